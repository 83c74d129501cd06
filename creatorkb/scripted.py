"""A model backend that answers from a function: the seam for testing routing rules in
milliseconds (in the spirit of httpx's `MockTransport(handler)`).

    local = ScriptedModel(lambda request: '{"summary": ...}')
    cloud = ScriptedModel(handler, provider="anthropic")

The handler gets the ModelRequest and returns the answer's text, a ModelAnswer, or raises
one of kb's ModelCallFailed errors (LocalUnavailable, CloudUnavailable, ...). Usage is
counted with kb's own token estimate; a scripted cloud call is priced like a real one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from creatorkb.calls import ModelAnswer, ModelCall, ModelRequest, Provider, Usage
from creatorkb.chunking import estimate_tokens
from creatorkb.pricing import price

Handler = Callable[[ModelRequest], "str | ModelAnswer"]


@dataclass
class ScriptedModel:
    handler: Handler
    provider: Provider = "ollama"
    model: str = "scripted"
    parallel: int = 4
    concurrency: int = 8
    context_window: int = 16_384
    max_output_tokens: int = 2048
    down: str | None = None
    requests: list[ModelRequest] = field(default_factory=list)

    def generate(self, request: ModelRequest) -> ModelAnswer:
        self.requests.append(request)
        result = self.handler(request)
        if isinstance(result, ModelAnswer):
            return result
        usage = Usage(
            input_tokens=estimate_tokens(request.system) + estimate_tokens(request.user),
            output_tokens=estimate_tokens(result),
        )
        model = request.model or self.model
        busy_ns = 1_000_000_000 if self.provider == "ollama" else 0
        call = ModelCall(self.provider, model, request.purpose, usage, 1.0, busy_ns=busy_ns)
        return ModelAnswer(call, result)

    def prompt_budget(self, model: str, system: str) -> int:
        return self.context_window - self.max_output_tokens - estimate_tokens(system)

    def max_cost(self, request: ModelRequest, *, batch: bool = False) -> Decimal:
        tokens = estimate_tokens(request.system) + estimate_tokens(request.user)
        usage = Usage(cache_write_5m_tokens=tokens, output_tokens=self.max_output_tokens)
        return price(usage, request.model or self.model, batch=batch)

    def message_params(self, request: ModelRequest) -> dict[str, Any]:
        return {
            "model": request.model or self.model,
            "max_tokens": request.output_limit(self.max_output_tokens),
            "system": request.system,
            "messages": [{"role": "user", "content": request.user}],
        }
