"""A model call as the ledger records it: who answered, what it used, how long it took."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from creatorkb.errors import KBError

Purpose = Literal[
    "draft", "refine", "direct", "consensus", "synthesis", "shadow", "prompt", "ask", "embed"
]
Provider = Literal["ollama", "anthropic"]


@dataclass(frozen=True)
class Usage:
    """Tokens as the provider reported them; `input_tokens` excludes cached input."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        """All input, cached or not."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


@dataclass(frozen=True)
class ModelCall:
    """One request to a model, successful or not."""

    provider: Provider
    model: str
    purpose: Purpose
    usage: Usage
    latency_ms: float
    error_type: str | None = None
    busy_ns: int = 0  # Ollama's total_duration: how long the GPU worked on it
    batch: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.error_type is None


@dataclass(frozen=True)
class ModelAnswer:
    """What a model said, and the call that produced it.

    `prompt_cut`: the model did not read the whole prompt (Ollama's silent truncation).
    `answer_cut`: the answer stopped at the output token limit.
    """

    call: ModelCall
    text: str
    prompt_cut: bool = False
    answer_cut: bool = False


class ModelCallFailed(KBError):
    """A model call failed; `call` is its record (with the error type) for the ledger, or
    None when no generation was attempted (the server could not even be asked)."""

    def __init__(self, message: str, call: ModelCall | None) -> None:
        super().__init__(message)
        self.call = call


class LocalUnavailable(ModelCallFailed):
    """Ollama could not be reached or failed to answer."""


class CloudUnavailable(ModelCallFailed):
    """Anthropic could not be reached, was overloaded or rate limited past the SDK's retries."""


class CloudKeyRejected(CloudUnavailable):
    """Anthropic refused the API key (401/403): no use asking again this run."""
