"""The YouTube settings block: languages, pause, proxy, circuit breaker, Data API key."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block

from creatorkb.settings import YouTubeEnvSettings, YouTubeOptions

BLOCK_NAME = "default"


class YouTubeSettings(Block, YouTubeOptions):
    """How the pipeline talks to YouTube. Saved as `youtube-settings/default`."""

    _block_type_name: ClassVar[str] = "YouTube settings"
    _block_type_slug: ClassVar[str] = "youtube-settings"
    _description: ClassVar[str] = (
        "Transcript languages, the pause between requests, proxy, circuit breaker and the "
        "optional YouTube Data API key used to fill feed gaps."
    )


def load_youtube_options() -> YouTubeOptions:
    """The saved block when there is one, else KB_YOUTUBE_* environment variables."""
    try:
        block = YouTubeSettings.load(BLOCK_NAME)
    except ValueError:
        return YouTubeEnvSettings()
    return YouTubeOptions.model_validate(block.model_dump(include=set(YouTubeOptions.model_fields)))
