"""Blocks for the two model backends: the Ollama server and the Anthropic credentials."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block

from creatorkb.configuration import BLOCK_NAME, BLOCK_SLUGS
from creatorkb.settings import (
    AnthropicOptions,
    OllamaOptions,
)


class OllamaServer(Block, OllamaOptions):
    """The local model server. Saved as `ollama-server/default`."""

    _block_type_name: ClassVar[str] = "Ollama server"
    _block_type_slug: ClassVar[str] = BLOCK_SLUGS[OllamaOptions]
    _description: ClassVar[str] = (
        "Where Ollama runs, which model drafts, which models answer for consensus, and how "
        "many requests it serves at once."
        f" kb reads the block saved under the name `{BLOCK_NAME}`."
    )


class AnthropicCredentials(Block, AnthropicOptions):
    """Claude access. The key is a secret field. Saved as `anthropic-credentials/default`."""

    _block_type_name: ClassVar[str] = "Anthropic credentials"
    _block_type_slug: ClassVar[str] = BLOCK_SLUGS[AnthropicOptions]
    _description: ClassVar[str] = (
        "The Anthropic API key (stored as a secret), the model, retries and concurrency."
        f" kb reads the block saved under the name `{BLOCK_NAME}`."
    )
