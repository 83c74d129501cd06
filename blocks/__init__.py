"""Prefect blocks: the settings an operator edits in the UI, each with an environment fallback."""

from __future__ import annotations

from typing import TypeVar

from prefect.blocks.core import Block
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from creatorkb.settings import from_environment

BLOCK_NAME = "default"  # every block kb reads is saved under this document name
Options = TypeVar("Options", bound=BaseModel)


def load_options(
    block_type: type[Block],
    options_type: type[Options],
    env_type: type[BaseSettings],
    use_blocks: bool = True,
) -> Options:
    """The saved block `<slug>/default` when there is one (and `use_blocks`), else the
    environment. Invalid environment values raise a SettingsError naming the variable."""
    fields = set(options_type.model_fields)
    if use_blocks:
        try:
            block = block_type.load(BLOCK_NAME)
        except ValueError:
            pass
        else:
            return options_type.model_validate(block.model_dump(include=fields))
    return from_environment(env_type, options_type)


def register_block_types() -> None:
    """Make kb's block types known to the Prefect server, so the UI offers their forms."""
    from blocks.models import AnthropicCredentials, OllamaServer
    from blocks.policy import CostModel, RoutingPolicyBlock
    from blocks.youtube import YouTubeSettings

    for block_type in (
        YouTubeSettings,
        OllamaServer,
        AnthropicCredentials,
        RoutingPolicyBlock,
        CostModel,
    ):
        block_type.register_type_and_schema()
