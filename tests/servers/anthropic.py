"""FakeAnthropic: a loopback server speaking Anthropic's Messages API (non-streaming)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
        # Models the Messages API (and a batch item) answers 404 for: set by a test.
        self.refused_models: set[str] = set()
        self.batch_calls: list[MessagesRequest] = []  # batch items as the model saw them
        self.batch_replies: list[dict[str, Any]] = []  # every batch item's message
        self.batches: dict[str, _Batch] = {}
        self.hold_batches = False  # True: batches stay in_progress until end_batches()
        # Scripted fates of batch items, by custom_id: errored, expired or canceled.
        self.item_fates: dict[str, str] = {}
        self.forgotten: set[str] = set()  # batch ids answered 404 from now on
        self.foreign_results: list[str] = []  # custom ids added to the next results file
        self._malformed_lines = 0
        self.route("POST", "/v1/messages/batches", self._create_batch)
        self.route("GET", "/v1/messages/batches", self._list_batches, limited=False)
        self.route("GET", "/v1/messages/batches/*", self._batch_get, limited=False)
        self.route("POST", "/v1/messages/batches/*", self._batch_cancel, limited=False)

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
        rejection = self._reject(request, ("model", "max_tokens", "messages"))
        if rejection is not None:
            return rejection
        answer = self._answer(request.json, _key_of(request), request.headers, "standard")
        if isinstance(answer, Response):
            return answer
        return json_response(answer, headers={"request-id": _new_id("req_")})

    def _answer(
        self, body: dict[str, Any], key: str, headers: dict[str, str], tier: str
    ) -> Response | dict[str, Any]:
        """The message answering one Messages request (direct, or a batch item), or the
        error response."""
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return self.error_response(400, f"{name}: Field required")
        if body["model"] in self.refused_models:
            return self.error_response(404, f"model: {body['model']}")
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
            headers=headers,
            body=body,
        )
        with self._lock:
            (self.calls if tier == "standard" else self.batch_calls).append(call)
        content, output_tokens, stop_reason = self._content(call)
        usage = self._usage(key, call.model, blocks)
        usage["input_tokens"] += _schema_tokens(body)
        message = {
            "id": _new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": output_tokens, "service_tier": tier},
        }
        with self._lock:
            (self.replies if tier == "standard" else self.batch_replies).append(message)
        return message

    # Message Batches

    def end_batches(self) -> None:
        """Process every batch still in progress (held by `hold_batches`) and end it."""
        with self._lock:
            open_batches = [b for b in self.batches.values() if b.status != "ended"]
        for batch in open_batches:
            self._process(batch)

    def malformed_result_lines(self, n: int = 1) -> None:
        """Cut the next ``n`` lines of results files in half (a broken line of JSON)."""
        with self._lock:
            self._malformed_lines += n

    @property
    def billed_batch_usages(self) -> list[dict[str, Any]]:
        """The usage of every batch item answered (billed at the batch price)."""
        with self._lock:
            return [reply["usage"] for reply in self.batch_replies]

    def _create_batch(self, request: HttpRequest) -> Response:
        """``POST /v1/messages/batches``: every request a custom_id and Messages params."""
        rejection = self._reject(request, ("requests",))
        if rejection is not None:
            return rejection
        requests = request.json["requests"]
        if not isinstance(requests, list) or not requests:
            return self.error_response(400, "requests: at least one request is required")
        seen: set[str] = set()
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
                return self.error_response(
                    400, f"requests.{index}.custom_id: String should match pattern"
                )
            if custom_id in seen:
                return self.error_response(
                    400, f"requests.{index}.custom_id: duplicate custom_id {custom_id!r}"
                )
            seen.add(custom_id)
            if not isinstance(item.get("params"), dict):
                return self.error_response(400, f"requests.{index}.params: Field required")
        now = time.time()
        batch = _Batch(
            batch_id=_new_id("msgbatch_"),
            key=_key_of(request),
            headers=request.headers,
            requests=requests,
            created_at=now,
        )
        with self._lock:
            self.batches[batch.batch_id] = batch
        if not self.hold_batches:
            self._process(batch)
        return json_response(self._batch_object(batch), headers={"request-id": _new_id("req_")})

    def _process(self, batch: _Batch, *, canceled: bool = False) -> None:
        """Answer (or cancel) every request of a batch, and end it."""
        results = []
        for item in batch.requests:
            custom_id = item["custom_id"]
            fate = "canceled" if canceled else self.item_fates.get(custom_id)
            if fate in ("canceled", "expired"):
                results.append({"custom_id": custom_id, "result": {"type": fate}})
                continue
            if fate == "errored":
                answer: Response | dict[str, Any] = self.error_response(500, "Internal error")
            else:
                answer = self._answer(item["params"], batch.key, batch.headers, "batch")
            if isinstance(answer, Response):
                error = json.loads(bytes(answer.body))  # type: ignore[arg-type]
                error.pop("request_id", None)
                results.append(
                    {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
                )
            else:
                results.append(
                    {"custom_id": custom_id, "result": {"type": "succeeded", "message": answer}}
                )
        with self._lock:
            batch.results = results
            batch.status = "ended"
            batch.ended_at = time.time()

    def _batch_object(self, batch: _Batch) -> dict[str, Any]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if batch.status == "ended":
            for line in batch.results:
                counts[line["result"]["type"]] += 1
        else:
            counts["processing"] = len(batch.requests)
        ended = batch.status == "ended"
        return {
            "id": batch.batch_id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "ended_at": _rfc3339(batch.ended_at) if ended else None,
            "created_at": _rfc3339(batch.created_at),
            "expires_at": _rfc3339(batch.created_at + 24 * 3600),
            "archived_at": None,
            "cancel_initiated_at": _rfc3339(batch.canceled_at) if batch.canceled_at else None,
            "results_url": (
                f"{self.url}/v1/messages/batches/{batch.batch_id}/results" if ended else None
            ),
        }

    def _find_batch(self, request: HttpRequest, batch_id: str) -> _Batch | Response:
        key = _key_of(request)
        if key != self.api_key:
            return self.error_response(401, "invalid x-api-key")
        with self._lock:
            batch = self.batches.get(batch_id)
        if batch is None or batch_id in self.forgotten:
            return self.error_response(404, f"message_batch_id: {batch_id} not found")
        if batch.status == "canceling":  # cancellation takes effect by the next look
            self._process(batch, canceled=True)
        return batch

    def _batch_get(self, request: HttpRequest) -> Response:
        """``GET /v1/messages/batches/{id}`` and ``.../{id}/results`` (JSON lines)."""
        rest = request.path.removeprefix("/v1/messages/batches/")
        batch_id, _, what = rest.partition("/")
        batch = self._find_batch(request, batch_id)
        if isinstance(batch, Response):
            return batch
        if what == "":
            return json_response(self._batch_object(batch), headers={"request-id": _new_id("req_")})
        if what != "results":
            return self.error_response(404)
        if batch.status != "ended":
            return self.error_response(400, f"Batch {batch_id} has not ended: no results yet")
        lines = [json.dumps(line) for line in batch.results]
        lines += [
            json.dumps({"custom_id": cid, "result": {"type": "expired"}})
            for cid in self.foreign_results
        ]
        self.foreign_results = []
        with self._lock:
            for index in range(min(self._malformed_lines, len(lines))):
                lines[index] = mangle(lines[index])
            self._malformed_lines = max(0, self._malformed_lines - len(lines))
        body = "".join(line + "\n" for line in lines).encode()
        return Response(200, body, {"content-type": "application/binary"})

    def _batch_cancel(self, request: HttpRequest) -> Response:
        """``POST /v1/messages/batches/{id}/cancel``: canceling, then ended (canceled)."""
        batch_id, _, what = request.path.removeprefix("/v1/messages/batches/").partition("/")
        if what != "cancel":
            return self.error_response(404)
        batch = self._find_batch(request, batch_id)
        if isinstance(batch, Response):
            return batch
        with self._lock:
            if batch.status == "in_progress":
                batch.status, batch.canceled_at = "canceling", time.time()
        return json_response(self._batch_object(batch), headers={"request-id": _new_id("req_")})

    def _list_batches(self, request: HttpRequest) -> Response:
        """``GET /v1/messages/batches``: newest first, paged by after_id / before_id."""
        if _key_of(request) != self.api_key:
            return self.error_response(401, "invalid x-api-key")
        limit = int((request.query.get("limit") or ["20"])[0])
        if not 1 <= limit <= 1000:
            return self.error_response(400, "limit: Input should be between 1 and 1000")
        with self._lock:
            ordered = sorted(self.batches.values(), key=lambda b: (b.created_at, b.batch_id))
        ids = [b.batch_id for b in reversed(ordered)]  # newest first
        after = (request.query.get("after_id") or [None])[0]
        before = (request.query.get("before_id") or [None])[0]
        if after is not None:
            start = ids.index(after) + 1 if after in ids else len(ids)
            page, has_more = ids[start : start + limit], start + limit < len(ids)
        elif before is not None:
            end = ids.index(before) if before in ids else 0
            page, has_more = ids[max(0, end - limit) : end], end - limit > 0
        else:
            page, has_more = ids[:limit], limit < len(ids)
        with self._lock:
            data = [self._batch_object(self.batches[i]) for i in page]
        payload = {
            "data": data,
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
        return json_response(payload, headers={"request-id": _new_id("req_")})

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


@dataclass
class _Batch:
    """A Message Batch as the fake keeps it."""

    batch_id: str
    key: str
    headers: dict[str, str]
    requests: list[dict[str, Any]]
    created_at: float
    status: str = "in_progress"
    ended_at: float | None = None
    canceled_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


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
