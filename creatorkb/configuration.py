"""Every settings object kb reads, the environment variables behind each, and the Prefect
block an operator may save instead.

A saved Prefect block, when there is one, wins over the environment (`blocks.load_options`
in flows; `cli.common.configured` reads the same documents over HTTP, without importing
Prefect). This module is importable without Prefect.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

from creatorkb.errors import SettingsError
from creatorkb.routing import RoutingPolicy, RoutingPolicyEnvSettings
from creatorkb.settings import (
    AnthropicEnvSettings,
    AnthropicOptions,
    CostEnvSettings,
    CostOptions,
    KnowledgeEnvSettings,
    KnowledgeOptions,
    OllamaEnvSettings,
    OllamaOptions,
    YouTubeEnvSettings,
    YouTubeOptions,
)

Options = TypeVar("Options", bound=BaseModel)
BLOCK_NAME = "default"  # every block kb reads is saved under this document name
# The block type of each settings object that has one (its UI form).
BLOCK_SLUGS: dict[type[BaseModel], str] = {
    YouTubeOptions: "youtube-settings",
    OllamaOptions: "ollama-server",
    AnthropicOptions: "anthropic-credentials",
    RoutingPolicy: "routing-policy",
    CostOptions: "cost-model",
}

ENVIRONMENT: dict[type[BaseModel], type[BaseSettings]] = {
    YouTubeOptions: YouTubeEnvSettings,
    OllamaOptions: OllamaEnvSettings,
    AnthropicOptions: AnthropicEnvSettings,
    RoutingPolicy: RoutingPolicyEnvSettings,
    CostOptions: CostEnvSettings,
    KnowledgeOptions: KnowledgeEnvSettings,
}


def from_environment(options_type: type[Options]) -> Options:
    """The options from their environment variables; an impossible value raises a
    SettingsError naming the variable."""
    env_type = ENVIRONMENT[options_type]
    try:
        settings = env_type()
    except ValidationError as error:
        raise SettingsError(_explain(error, env_type)) from None
    return options_type.model_validate(settings.model_dump(include=set(options_type.model_fields)))


def from_block(options_type: type[Options], data: dict[str, object]) -> Options:
    """The options saved in a block document (its `data`, secrets included)."""
    fields = set(options_type.model_fields)
    return options_type.model_validate({k: v for k, v in data.items() if k in fields})


def _explain(error: ValidationError, env_type: type[BaseSettings]) -> str:
    prefix = str(env_type.model_config.get("env_prefix", ""))
    problems = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        alias = (
            env_type.model_fields[field].validation_alias
            if field in env_type.model_fields
            else None
        )
        name = alias if isinstance(alias, str) else f"{prefix}{field}".upper()
        secret = field in env_type.model_fields and "Secret" in str(
            env_type.model_fields[field].annotation
        )
        shown = "(secret)" if secret else repr(problem.get("input"))
        problems.append(f"{name}={shown}: {problem['msg']}")
    return "invalid setting: " + "; ".join(problems)
