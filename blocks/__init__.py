"""Prefect blocks: the settings an operator edits in the UI, each with an environment fallback.

`load_options(YouTubeOptions)` is how every flow reads its settings: the block saved under
the name `default` when there is one, else the environment (creatorkb.configuration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel

from creatorkb.configuration import BLOCK_NAME, from_block, from_environment

if TYPE_CHECKING:
    from prefect.blocks.core import Block

__all__ = ["BLOCK_NAME", "block_types", "load_options", "register_block_types"]
Options = TypeVar("Options", bound=BaseModel)


def block_types() -> dict[type[BaseModel], type[Block]]:
    """kb's block type for each settings object."""
    from blocks.models import AnthropicCredentials, OllamaServer
    from blocks.policy import CostModel, RoutingPolicyBlock
    from blocks.youtube import YouTubeSettings
    from creatorkb.routing import RoutingPolicy
    from creatorkb.settings import AnthropicOptions, CostOptions, OllamaOptions, YouTubeOptions

    return {
        YouTubeOptions: YouTubeSettings,
        OllamaOptions: OllamaServer,
        AnthropicOptions: AnthropicCredentials,
        RoutingPolicy: RoutingPolicyBlock,
        CostOptions: CostModel,
    }


def load_options(options_type: type[Options], use_blocks: bool = True) -> Options:
    """The saved block `<slug>/default` when there is one (and `use_blocks`), else the
    environment. Invalid environment values raise a SettingsError naming the variable."""
    block_type = block_types().get(options_type) if use_blocks else None
    if block_type is not None:  # some settings (KnowledgeOptions) have no block
        try:
            block = block_type.load(BLOCK_NAME)
        except ValueError:
            pass
        else:
            return from_block(options_type, block.model_dump())
    return from_environment(options_type)


def register_block_types() -> None:
    """Make kb's block types known to the Prefect server, so the UI offers their forms."""
    for block_type in block_types().values():
        block_type.register_type_and_schema()
