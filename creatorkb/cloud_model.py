"""The cloud model: Claude through the official Anthropic SDK.

Structured output is a forced tool whose input schema is the insight schema. The static
system prompt carries a cache breakpoint, so the tools and system prompt (the same for every
video) are written to Anthropic's prompt cache once and read from it after. The SDK retries
429/529/5xx, honouring `retry-after`; what still fails is classified for the router.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from creatorkb.calls import ModelAnswer, ModelCall, ModelRequest, Purpose, Usage
from creatorkb.chunking import estimate_tokens
from creatorkb.errors import CloudKeyRejected, CloudUnavailable, SettingsError
from creatorkb.insight import TOOL_NAME
from creatorkb.pricing import price
from creatorkb.settings import AnthropicOptions

if TYPE_CHECKING:  # the SDK takes seconds to import: only runs that call the cloud load it
    import anthropic

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"


class CloudModel:
    """Anthropic's Messages API, at most `concurrency` requests at once."""

    provider = "anthropic"

    def __init__(self, options: AnthropicOptions) -> None:
        if options.api_key is None:
            raise SettingsError(
                "no Anthropic API key is configured: set ANTHROPIC_API_KEY or save the "
                "anthropic-credentials block"
            )
        import anthropic

        self.options = options
        self.model = options.model
        self._client = anthropic.Anthropic(
            api_key=options.api_key.get_secret_value(),
            base_url=options.base_url,
            max_retries=options.max_retries,
            timeout=options.timeout_seconds,
        )
        self.concurrency = options.concurrency
        self._slots = threading.BoundedSemaphore(options.concurrency)
        # Set when the key is refused: nobody asks again this run (no 401 storm).
        self.down: str | None = None

    def max_cost(self, request: ModelRequest, *, batch: bool = False) -> Decimal:
        """An upper bound of a request's cost: all input billed at the cache-write rate, and
        as much output as the request can need (at the batch price when it is batched)."""
        tokens = estimate_tokens(request.system) + estimate_tokens(request.user)
        if request.schema is not None:
            tokens += estimate_tokens(json.dumps(request.schema))
        output = request.output_limit(self.options.max_output_tokens)
        model = request.model or self.model
        if self.options.cache_ttl == "1h":
            usage = Usage(cache_write_1h_tokens=tokens, output_tokens=output)
        else:
            usage = Usage(cache_write_5m_tokens=tokens, output_tokens=output)
        return price(usage, model, batch=batch)

    def message_params(self, request: ModelRequest) -> dict[str, Any]:
        """The Messages API parameters of a request (sent directly, or as a batch item)."""
        model = request.model or self.model
        cache = {"type": "ephemeral", "ttl": self.options.cache_ttl}
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": request.output_limit(self.options.max_output_tokens),
            "system": [{"type": "text", "text": request.system, "cache_control": cache}],
            "messages": [{"role": "user", "content": request.user}],
        }
        if request.schema is not None:
            params["tools"] = [
                {
                    "name": TOOL_NAME,
                    "description": "Record the analysis of the video.",
                    "input_schema": request.schema,
                }
            ]
            params["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        return params

    def generate(self, request: ModelRequest) -> ModelAnswer:
        """One Messages request (the configured model unless the request names one); raises
        CloudUnavailable, with the failed call, on failure."""
        import anthropic

        model = request.model or self.model
        message_request = self.message_params(request)
        with self._slots:
            if self.down:  # the key was refused while this request waited for a slot
                raise CloudKeyRejected(self.down, None)
            started = time.perf_counter()
            try:
                message = self._client.messages.create(**message_request)
            except anthropic.APIError as error:
                raise self._failure(error, model, request.purpose, started) from error
        latency = (time.perf_counter() - started) * 1000
        return answer_of(message, model, request.purpose, latency, self.options.cache_ttl)

    @property
    def client(self) -> anthropic.Anthropic:
        """The SDK client (the Message Batches API is used through it: creatorkb/batches.py)."""
        return self._client

    def _failure(
        self, error: anthropic.APIError, model: str, purpose: Purpose, started: float
    ) -> CloudUnavailable:
        import anthropic

        latency = (time.perf_counter() - started) * 1000
        call = ModelCall("anthropic", model, purpose, Usage(), latency, type(error).__name__)
        if isinstance(error, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
            self.down = (
                f"Anthropic rejected the API key ({type(error).__name__}); check "
                "ANTHROPIC_API_KEY or the anthropic-credentials block"
            )
            return CloudKeyRejected(self.down, call)
        return CloudUnavailable(f"Anthropic failed: {type(error).__name__}: {error}", call)


def check_access(options: AnthropicOptions) -> str:
    """Whether the key is accepted and the model is served, asked with one free request
    (`GET /v1/models/{model}`); returns the model's display name, or raises CloudKeyRejected
    or CloudUnavailable saying what to do. Made without the SDK, which takes seconds to
    import, so that `kb doctor` answers fast."""
    if options.api_key is None:
        raise SettingsError("no Anthropic API key is configured: set ANTHROPIC_API_KEY")
    base = (options.base_url or DEFAULT_BASE_URL).rstrip("/")
    headers = {"x-api-key": options.api_key.get_secret_value(), "anthropic-version": API_VERSION}
    try:
        response = httpx.get(f"{base}/v1/models/{options.model}", headers=headers, timeout=10)
    except httpx.HTTPError as error:
        raise CloudUnavailable(f"Anthropic at {base} is unreachable: {error}", None) from error
    if response.status_code in (401, 403):
        raise CloudKeyRejected(
            f"Anthropic rejected the API key ({response.status_code}); check ANTHROPIC_API_KEY "
            "or the anthropic-credentials block",
            None,
        )
    if response.status_code == 404:
        raise CloudUnavailable(
            f"Anthropic does not serve model {options.model!r} (404: retired or misspelt); "
            "set KB_ANTHROPIC_MODEL (or the block's model) to a current one, e.g. "
            "claude-sonnet-5",
            None,
        )
    if response.status_code != 200:
        raise CloudUnavailable(f"Anthropic answered {response.status_code} at {base}", None)
    return str(response.json().get("display_name") or options.model)


def deprecation_notice(model: str) -> str | None:
    """What the Anthropic SDK says about `model` if it marks it deprecated, else None."""
    deprecated = _sdk_deprecations()
    if model not in deprecated:
        return None
    return (
        f"Anthropic model {model!r} is deprecated and reaches end of life on "
        f"{deprecated[model]}; choose a current model such as claude-sonnet-5"
    )


def _sdk_deprecations() -> dict[str, str]:
    """The SDK's own table (it has no public name), read from its file so that the SDK
    itself need not be imported."""
    package = importlib.util.find_spec("anthropic")
    assert package is not None and package.origin is not None
    path = Path(package.origin).parent / "_data" / "deprecated_models.py"
    spec = importlib.util.spec_from_file_location("_kb_anthropic_deprecations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.DEPRECATED_MODELS)


def answer_of(
    message: anthropic.types.Message,
    model: str,
    purpose: Purpose,
    latency_ms: float,
    ttl: str,
    *,
    batch: bool = False,
    detail: dict[str, Any] | None = None,
) -> ModelAnswer:
    """A Messages response (direct, or a batch item's) as kb's answer and call record: the
    one place a Claude message becomes a call."""
    call = ModelCall(
        "anthropic",
        model,
        purpose,
        _usage(message.usage, ttl),
        latency_ms,
        batch=batch,
        detail={"stop_reason": message.stop_reason, "request_id": message.id, **(detail or {})},
    )
    return ModelAnswer(call, _content(message), answer_cut=message.stop_reason == "max_tokens")


def _usage(usage: anthropic.types.Usage, ttl: str) -> Usage:
    written = usage.cache_creation_input_tokens or 0
    split = usage.cache_creation
    five = split.ephemeral_5m_input_tokens if split else (written if ttl == "5m" else 0)
    hour = split.ephemeral_1h_input_tokens if split else (written if ttl == "1h" else 0)
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_5m_tokens=five,
        cache_write_1h_tokens=hour,
    )


def _content(message: anthropic.types.Message) -> str:
    for block in message.content:
        if block.type == "tool_use":
            return json.dumps(block.input)
    return "".join(block.text for block in message.content if block.type == "text")
