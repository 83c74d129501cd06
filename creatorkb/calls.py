"""Model calls: what is asked (a request), what comes back (an answer and the call's record),
the log of one job's calls, and the one interface every model backend implements."""

from __future__ import annotations

import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from creatorkb.errors import ModelCallFailed

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
class ModelRequest:
    """One generation asked of a model; `model` None means the backend's default model, and
    `max_output_tokens` the most the answer can need (None: the backend's configured limit)."""

    system: str
    user: str
    purpose: Purpose
    schema: dict[str, Any] | None = None
    model: str | None = None
    max_output_tokens: int | None = None

    def output_limit(self, configured: int) -> int:
        """The output tokens to allow: what the answer can need, within the configured cap."""
        return min(configured, self.max_output_tokens or configured)


@dataclass(frozen=True)
class ModelCall:
    """One request to a model, successful or not, as the ledger records it."""

    provider: Provider
    model: str
    purpose: Purpose
    usage: Usage
    latency_ms: float
    error_type: str | None = None
    busy_ns: int = 0  # GPU time it added on its host (the union: gpu_time.py)
    batch: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    reservation_id: str | None = None  # the budget reservation that paid for it (cloud)
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.error_type is None

    def to_json(self) -> dict[str, Any]:
        """The call as JSON (kept with a batch item until its job is finished)."""
        data = asdict(self)
        data["ts"] = self.ts.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCall:
        fields = {**data, "usage": Usage(**data["usage"]), "ts": datetime.fromisoformat(data["ts"])}
        return cls(**fields)


@dataclass(frozen=True)
class ModelAnswer:
    """What a model said, and the call that produced it.

    `prompt_cut`: the model did not read the whole prompt (Ollama's silent truncation).
    `answer_cut`: the answer stopped at the output token limit.
    `stopped`: kb stopped the answer early, and why (it had started to repeat itself).
    """

    call: ModelCall
    text: str
    prompt_cut: bool = False
    answer_cut: bool = False
    stopped: str | None = None  # why kb stopped the answer early (it started to loop)

    @property
    def complete(self) -> bool:
        """A whole answer to the whole prompt, with something in it."""
        whole = not (self.prompt_cut or self.answer_cut or self.stopped)
        return bool(self.text.strip()) and whole


class ModelBackend(Protocol):
    """A model server kb can ask (Ollama, Anthropic, or a scripted one in tests)."""

    provider: Provider

    def generate(self, request: ModelRequest) -> ModelAnswer:
        """Answer the request, or raise ModelCallFailed (with the failed call's record)."""
        ...


class LocalBackend(ModelBackend, Protocol):
    """A model on the owner's own hardware (Ollama, or a scripted one in tests)."""

    parallel: int  # requests it serves at once

    def prompt_budget(self, model: str, system: str) -> int:
        """Estimated tokens of user text one request can carry whole."""
        ...


class CallLog:
    """Every call one job made, in order; safe to append to from several threads."""

    def __init__(self) -> None:
        self._calls: list[ModelCall] = []
        self._lock = threading.Lock()

    @property
    def calls(self) -> list[ModelCall]:
        with self._lock:
            return list(self._calls)

    def ask(self, backend: ModelBackend, request: ModelRequest) -> ModelAnswer:
        """The backend's answer; the call is logged whether it answered or failed."""
        try:
            answer = backend.generate(request)
        except ModelCallFailed as failure:
            if failure.call is not None:
                self._add(failure.call)
            raise
        self._add(answer.call)
        return answer

    def _add(self, call: ModelCall) -> None:
        with self._lock:
            self._calls.append(call)
