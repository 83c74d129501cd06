"""The YouTube settings block: languages, pause, proxy, circuit breaker, Data API key."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block

from blocks import load_options
from creatorkb.settings import YouTubeEnvSettings, YouTubeOptions


class YouTubeSettings(Block, YouTubeOptions):
    """How the pipeline talks to YouTube. Saved as `youtube-settings/default`."""

    _block_type_name: ClassVar[str] = "YouTube settings"
    _block_type_slug: ClassVar[str] = "youtube-settings"
    _description: ClassVar[str] = (
        "Transcript languages, the pause between requests, proxy, circuit breaker and the "
        "optional YouTube Data API key used to fill feed gaps."
    )


def load_youtube_options(use_blocks: bool = True) -> YouTubeOptions:
    """The saved block when there is one, else KB_YOUTUBE_* environment variables."""
    return load_options(YouTubeSettings, YouTubeOptions, YouTubeEnvSettings, use_blocks)
