"""FakeAnthropic: a loopback server speaking Anthropic's Messages API (non-streaming)."""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tests.servers.base import (
    HttpRequest,
    LoopbackServer,
    Reply,
    Response,
    content_text,
    default_reply,
    json_response,
    last_user_text,
    mangle,
    render,
    status_phrase,
)
from tests.servers.tokens import count_tokens, truncate_back

DEFAULT_API_KEY = "sk-ant-test-0000000000000000"
CACHE_TTL_S = {"5m": 300.0, "1h": 3600.0}
MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20  # block boundaries checked for a cache hit before each breakpoint
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    429: "This request would exceed your organization's rate limit. Please try again later.",
    500: "Internal server error",
    529: "Overloaded",
}


@dataclass(frozen=True)
class MessagesRequest:
    """A ``POST /v1/messages`` call as the model sees it."""

    model: str
    system: str  # system prompt text (blocks joined by newlines)
    messages: list[dict[str, Any]]
    schema: dict[str, Any] | None  # forced tool's input_schema, or output_config's schema
    tool_name: str | None  # set when the answer must be a tool_use of this tool
    max_tokens: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def user(self) -> str:
        """Text of the last user message."""
        return last_user_text(self.messages)


Responder = Callable[[MessagesRequest], Reply]


def _default_responder(request: MessagesRequest) -> Reply:
    return default_reply(request.schema)


@dataclass(frozen=True)
class _Block:
    """One prompt block: its token count, identity for cache keys, and breakpoint TTL."""

    tokens: int
    identity: str
    ttl: str | None


class FakeAnthropic(LoopbackServer):
    """Anthropic's ``/v1/messages`` and ``/v1/messages/count_tokens`` with prompt caching.

    The prompt is tools → system → messages; each block with ``cache_control`` (or the
    last block, for a top-level ``cache_control``) is a breakpoint. A prefix reaching
    ``min_cache_tokens`` is written to the cache on first sight (per api key and model)
    and read back while its TTL lasts; ``input_tokens`` counts only what follows the last
    cached or read position, plus the ``output_config`` schema. The key is accepted from
    ``x-api-key`` or ``Authorization: Bearer`` (which is how the 2.x SDK sends ``api_key``).
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        parallel: int = 8,
        latency_s: float = 0.0,
        min_cache_tokens: int = 1024,
    ) -> None:
        super().__init__(parallel=parallel, latency_s=latency_s)
        self.api_key = api_key
        self.min_cache_tokens = min_cache_tokens
        self.responder: Responder = _default_responder
        self.calls: list[MessagesRequest] = []
        self.replies: list[dict[str, Any]] = []  # every message sent back, usage included
        self.clock: Callable[[], float] = time.monotonic  # drives cache expiry
        self._cache: dict[tuple[str, str, str], tuple[float, float]] = {}  # -> (expiry, ttl)
        self.route("POST", "/v1/messages", self._messages)
        self.route("POST", "/v1/messages/count_tokens", self._count_tokens, limited=False)
        self.route("GET", "/v1/models/*", self._model, limited=False)
        # Models the API no longer serves (404), like the claude-*-4-5 family after its end.
        self.retired_models: set[str] = {"claude-sonnet-4-5", "claude-haiku-4-5"}

    def fail_next(
        self,
        statuses: Iterable[int],
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        """Answer the next messages calls with these statuses, optionally with retry headers."""
        headers = {}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        if should_retry is not None:
            headers["x-should-retry"] = str(should_retry).lower()
        self._fail_next(list(statuses), headers)

    def clear_cache(self) -> None:
        """Forget every cached prompt prefix."""
        with self._lock:
            self._cache.clear()

    def error_response(self, status: int, message: str | None = None) -> Response:
        """Anthropic's typed error body, with its request id also in a header."""
        request_id = _new_id("req_")
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        error = {
            "type": kind,
            "message": message or _ERROR_MESSAGES.get(status) or status_phrase(status),
        }
        return json_response(
            {"type": "error", "error": error, "request_id": request_id},
            status,
            {"request-id": request_id},
        )

    # endpoints

    def _messages(self, request: HttpRequest) -> Response:
        body = request.json
        rejection = self._reject(request, ("model", "max_tokens", "messages"))
        if rejection is not None:
            return rejection
        if body.get("stream"):
            return self.error_response(400, "stream: FakeAnthropic only simulates stream=false")
        if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
            return self.error_response(
                400, "max_tokens: Input should be greater than or equal to 1"
            )
        try:
            blocks = _prompt_blocks(body)
            tool_name, schema = _structure(body)
        except ValueError as exc:
            return self.error_response(400, str(exc))
        call = MessagesRequest(
            model=body["model"],
            system=content_text(body.get("system")),
            messages=body["messages"],
            schema=schema,
            tool_name=tool_name,
            max_tokens=body["max_tokens"],
            headers=request.headers,
            body=body,
        )
        with self._lock:
            self.calls.append(call)
        content, output_tokens, stop_reason = self._content(call)
        usage = self._usage(_key_of(request), call.model, blocks)
        usage["input_tokens"] += _schema_tokens(body)
        message = {
            "id": _new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": output_tokens, "service_tier": "standard"},
        }
        with self._lock:
            self.replies.append(message)
        return json_response(message, headers={"request-id": _new_id("req_")})

    def _model(self, request: HttpRequest) -> Response:
        """``GET /v1/models/{model_id}``: the model's card, or 404 for a retired one."""
        key = _key_of(request)
        if key != self.api_key:
            return self.error_response(401, "invalid x-api-key")
        model = request.path.removeprefix("/v1/models/")
        if model in self.retired_models or not model.startswith("claude-"):
            return self.error_response(404, f"model: {model}")
        card = {
            "type": "model",
            "id": model,
            "display_name": " ".join(part.capitalize() for part in model.split("-")),
            "created_at": "2026-05-22T00:00:00Z",
        }
        return json_response(card, headers={"request-id": _new_id("req_")})

    def _count_tokens(self, request: HttpRequest) -> Response:
        rejection = self._reject(request, ("model", "messages"))
        if rejection is not None:
            return rejection
        try:
            total = sum(b.tokens for b in _prompt_blocks(request.json))
        except ValueError as exc:
            return self.error_response(400, str(exc))
        payload = {"input_tokens": total + _schema_tokens(request.json)}
        return json_response(payload, headers={"request-id": _new_id("req_")})

    # helpers

    def _reject(self, request: HttpRequest, required: tuple[str, ...]) -> Response | None:
        """The error for a bad key, missing version header or missing fields, if any."""
        key = _key_of(request)
        if not key:
            return self.error_response(401, "x-api-key header is required")
        if key != self.api_key:
            return self.error_response(401, "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return self.error_response(400, "anthropic-version: header is required")
        if not isinstance(request.json, dict):
            return self.error_response(400, "There was an error parsing the body as JSON")
        for name in required:
            if name not in request.json:
                return self.error_response(400, f"{name}: Field required")
        if "messages" in required and not request.json["messages"]:
            return self.error_response(400, "messages: at least one message is required")
        return None

    def _content(self, call: MessagesRequest) -> tuple[list[dict[str, Any]], int, str]:
        """Content blocks, output tokens and stop reason for the responder's answer."""
        reply = self.responder(call)
        malformed = self._take_malformed()
        if call.tool_name is not None:
            tool_input = json.loads(reply) if isinstance(reply, str) else reply
            if malformed:
                tool_input = {}
            tokens = max(1, count_tokens(json.dumps(tool_input)))
            stop_reason = "max_tokens" if tokens > call.max_tokens else "tool_use"
            block = {"type": "tool_use", "id": _new_id("toolu_"), "name": call.tool_name}
            return [{**block, "input": tool_input}], min(tokens, call.max_tokens), stop_reason
        text = mangle(render(reply)) if malformed else render(reply)
        stop_reason = "end_turn"
        if count_tokens(text) > call.max_tokens:
            text, stop_reason = truncate_back(text, call.max_tokens), "max_tokens"
        return [{"type": "text", "text": text}], max(1, count_tokens(text)), stop_reason

    def _usage(self, key: str, model: str, blocks: list[_Block]) -> dict[str, Any]:
        """Input-side usage: cache reads and writes at breakpoints, the rest as input."""
        # Index k describes the prefix made of the first k blocks.
        cumulative, hashes, chain = [0], [""], hashlib.sha256()
        for block in blocks:
            chain.update(block.identity.encode())
            cumulative.append(cumulative[-1] + block.tokens)
            hashes.append(chain.hexdigest())
        ends = [(i + 1, b.ttl) for i, b in enumerate(blocks) if b.ttl]
        created = dict.fromkeys(CACHE_TTL_S, 0)
        now = self.clock()
        with self._lock:
            hit = max((self._lookup(key, model, hashes, end, now) for end, _ in ends), default=0)
            position = hit
            for end, ttl in ends:
                if end > position and cumulative[end] >= self.min_cache_tokens:
                    created[ttl] += cumulative[end] - cumulative[position]
                    ttl_s = CACHE_TTL_S[ttl]
                    self._cache[key, model, hashes[end]] = (now + ttl_s, ttl_s)
                    position = end
        return {
            "input_tokens": cumulative[-1] - cumulative[position],
            "cache_creation_input_tokens": sum(created.values()),
            "cache_read_input_tokens": cumulative[hit],
            "cache_creation": {
                "ephemeral_5m_input_tokens": created["5m"],
                "ephemeral_1h_input_tokens": created["1h"],
            },
        }

    def _lookup(self, key: str, model: str, hashes: list[str], end: int, now: float) -> int:
        """The longest cached prefix within the lookback window before ``end`` (TTL refreshed)."""
        for k in range(end, max(0, end - LOOKBACK_BLOCKS - 1), -1):
            expiry, ttl = self._cache.get((key, model, hashes[k]), (0.0, 0.0))
            if expiry > now:
                self._cache[key, model, hashes[k]] = (now + ttl, ttl)
                return k
        return 0


def _key_of(request: HttpRequest) -> str:
    """The API key, from ``x-api-key`` or (as the 2.x SDK sends it) a bearer token."""
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return request.headers.get("x-api-key") or bearer


def _prompt_blocks(body: dict[str, Any]) -> list[_Block]:
    """The prompt as cacheable blocks, in cache-prefix order: tools, system, messages."""
    blocks = [
        _block({"tool": tool}, json.dumps(_strip(tool)), tool) for tool in body.get("tools") or []
    ]
    system = body.get("system") or []
    for item in [{"type": "text", "text": system}] if isinstance(system, str) else system:
        blocks.append(_block({"system": item}, item.get("text", ""), item))
    for message in body.get("messages") or []:
        content = message.get("content") or []
        for item in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            text = item["text"] if item.get("type") == "text" else json.dumps(_strip(item))
            blocks.append(_block({"role": message.get("role"), **item}, text, item))
    top = body.get("cache_control")
    if top and blocks and blocks[-1].ttl is None:
        blocks[-1] = _Block(blocks[-1].tokens, blocks[-1].identity, top.get("ttl", "5m"))
    found = sum(1 for b in blocks if b.ttl)
    if found > MAX_BREAKPOINTS:
        limit = f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided."
        raise ValueError(f"{limit} Found {found}.")
    return blocks


def _block(identity: dict[str, Any], text: str, item: dict[str, Any]) -> _Block:
    control = item.get("cache_control")
    ttl = control.get("ttl", "5m") if control else None
    if ttl not in (None, *CACHE_TTL_S):
        raise ValueError(f"cache_control.ttl: Input should be '5m' or '1h', got {ttl!r}")
    return _Block(count_tokens(text), json.dumps(_strip(identity), sort_keys=True), ttl)


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` without ``cache_control`` (which does not change a prefix's identity)."""
    return {
        k: _strip(v) if isinstance(v, dict) else v for k, v in item.items() if k != "cache_control"
    }


def _structure(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The forced tool's name and the schema the answer must follow, if any."""
    choice = body.get("tool_choice") or {}
    tools = {tool.get("name"): tool for tool in body.get("tools") or []}
    if choice.get("type") == "tool":
        name = choice.get("name")
        if name not in tools:
            raise ValueError(f"tool_choice: tool {name!r} is not in 'tools'")
        return name, tools[name].get("input_schema")
    if choice.get("type") == "any" and tools:
        name, tool = next(iter(tools.items()))
        return name, tool.get("input_schema")
    output_format = (body.get("output_config") or {}).get("format")
    if output_format:
        if output_format.get("type") != "json_schema" or "schema" not in output_format:
            raise ValueError(
                "output_config.format: expected {'type': 'json_schema', 'schema': ...}"
            )
        return None, output_format["schema"]
    return None, None


def _schema_tokens(body: dict[str, Any]) -> int:
    output_format = (body.get("output_config") or {}).get("format") or {}
    return count_tokens(json.dumps(output_format["schema"])) if "schema" in output_format else 0


def _new_id(prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "01" + "".join(secrets.choice(alphabet) for _ in range(22))
