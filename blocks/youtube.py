"""The YouTube settings block: languages, pause, proxy, circuit breaker, Data API key."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block

from creatorkb.configuration import BLOCK_NAME, BLOCK_SLUGS
from creatorkb.settings import YouTubeOptions


class YouTubeSettings(Block, YouTubeOptions):
    """How the pipeline talks to YouTube. Saved as `youtube-settings/default`."""

    _block_type_name: ClassVar[str] = "YouTube settings"
    _block_type_slug: ClassVar[str] = BLOCK_SLUGS[YouTubeOptions]
    _description: ClassVar[str] = (
        "Transcript languages, the pause between requests, proxy, circuit breaker and the "
        "optional YouTube Data API key used to fill feed gaps."
        f" kb reads the block saved under the name `{BLOCK_NAME}`."
    )
