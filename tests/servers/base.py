"""A small reusable HTTP server on 127.0.0.1 for simulating remote services in tests.

The end of the module holds what the simulated LLM servers share: the reply type,
message-text helpers, and the minimal JSON-schema instance behind their default replies.
"""

from __future__ import annotations

import contextlib
import json
import math
import select
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

JSON_TYPE = "application/json; charset=utf-8"
DEFAULT_TEXT = "This is a simulated reply."

Reply = str | dict[str, Any]
"""What a responder returns: text, or a dict that is sent as its JSON dump."""


@dataclass(frozen=True)
class HttpRequest:
    """One request as the server received it; ``status`` is its answer's (0 while in flight)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # parsed body, or None when the body is not JSON
    received_at: float  # time.monotonic() on arrival
    status: int = 0
    answered_at: float = 0.0  # time.monotonic() when the answer was ready


@dataclass
class Response:
    """A response to send; a list body is sent with chunked transfer encoding."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[HttpRequest], Response]


def status_phrase(status: int) -> str:
    """The standard reason phrase, or "Error" for non-standard codes such as 529."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response."""
    return Response(
        status, json.dumps(payload).encode(), {"content-type": JSON_TYPE, **(headers or {})}
    )


@dataclass(frozen=True)
class _Route:
    handler: Handler
    limited: bool


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: LoopbackServer, port: int) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", port), _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients that time out or a server going down cut connections."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def _serve(self) -> None:
        self.server.owner._serve(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines."""


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 with routes, request recording and fault hooks.

    Routes registered with ``limited=True`` model work done by the service: they wait for one
    of ``parallel`` slots (queueing beyond it), pay ``latency_s`` plus any scripted stall,
    count toward ``max_concurrency`` and ``die_after``, and answer scripted failures.
    """

    def __init__(self, *, parallel: int | None = None, latency_s: float = 0.0) -> None:
        """``parallel=None`` serves limited routes without a slot limit."""
        self.latency_s = latency_s
        self.max_concurrency = 0
        self._slots = threading.BoundedSemaphore(parallel) if parallel else None
        self._routes: dict[tuple[str, str], _Route] = {}
        self._lock = threading.Lock()
        self._records: list[HttpRequest] = []
        self._active = 0
        self._stalls: deque[float] = deque()
        self._failures: deque[tuple[int, dict[str, str]]] = deque()
        self._malformed = 0
        self._die_after: int | None = None
        self._conns: set[socket.socket] = set()
        self._closed = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Listen and serve in a background thread; after a stop, on the same port."""
        if self._httpd is None:
            self._httpd = _HTTPServer(self, self.port)
            self.port = self._httpd.server_address[1]
            self._closed.clear()
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (new connections are refused)."""
        self._shutdown(keep=None)

    up = start
    down = stop

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def is_up(self) -> bool:
        """Whether the server is accepting connections."""
        return self._httpd is not None

    # routes and service hooks

    def route(self, method: str, path: str, handler: Handler, *, limited: bool = True) -> None:
        """Serve ``method path`` with ``handler``; a path ending in ``/*`` serves every path
        below it (the handler reads the rest from ``request.path``)."""
        self._routes[method, path] = _Route(handler, limited)

    def _route_for(self, method: str, path: str) -> _Route | None:
        exact = self._routes.get((method, path))
        if exact is not None:
            return exact
        below = [
            (len(pattern), route)
            for (verb, pattern), route in self._routes.items()
            if verb == method and pattern.endswith("/*") and path.startswith(pattern[:-1])
        ]
        return max(below, key=lambda item: item[0])[1] if below else None

    def error_response(self, status: int, message: str | None = None) -> Response:
        """The service's error body for ``status``; override to match the real service."""
        return json_response({"error": message or status_phrase(status)}, status)

    # faults

    def stall_next(self, n: int, seconds: float) -> None:
        """Delay the next ``n`` limited requests by ``seconds`` (beyond ``latency_s``)."""
        with self._lock:
            self._stalls.extend([seconds] * n)

    def malformed_next(self, n: int = 1) -> None:
        """Make the next ``n`` successful answers malformed (the service decides how)."""
        with self._lock:
            self._malformed += n

    def _take_malformed(self) -> bool:
        with self._lock:
            take, self._malformed = self._malformed > 0, max(0, self._malformed - 1)
        return take

    def die_after(self, n: int) -> None:
        """Go down right after answering ``n`` more limited requests."""
        with self._lock:
            self._die_after = n

    def _fail_next(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        """Answer the next limited requests with ``error_response(status)``, one per status."""
        with self._lock:
            self._failures.extend((status, headers or {}) for status in statuses)

    # records

    @property
    def requests(self) -> list[HttpRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._records)

    @property
    def status_counts(self) -> Counter[int]:
        """Number of answered requests per HTTP status."""
        return Counter(r.status for r in self.requests)

    def requests_to(self, path: str) -> list[HttpRequest]:
        """Recorded requests for ``path``."""
        return [r for r in self.requests if r.path == path]

    # internals

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _shutdown(self, keep: socket.socket | None) -> None:
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is None or thread is None:
            return
        self._closed.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = [c for c in self._conns if c is not keep]
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        thread.join()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._closed.wait(seconds)

    def _serve(self, h: _RequestHandler) -> None:
        request = _read_request(h)
        with self._lock:
            index = len(self._records)
            self._records.append(request)
        route = self._route_for(request.method, request.path)
        dying = False
        try:
            if route is None:
                response = self.error_response(404)
            elif route.limited:
                response, dying = self._serve_limited(route.handler, request)
            else:
                response = route.handler(request)
        except Exception as exc:  # a bug in a handler or responder: report it, don't retry it
            response = self.error_response(500, f"{type(exc).__name__}: {exc}")
            response.headers["x-should-retry"] = "false"
        # Like nginx's 499: the client hung up (timed out) before the answer was ready.
        status = 499 if _client_gone(h.connection) else response.status
        with self._lock:
            self._records[index] = replace(request, status=status, answered_at=time.monotonic())
        if dying:
            self._shutdown(keep=h.connection)
            response.headers["connection"] = "close"
        _write_response(h, response)

    def _serve_limited(self, handler: Handler, request: HttpRequest) -> tuple[Response, bool]:
        with self._slots or contextlib.nullcontext():
            with self._lock:
                self._active += 1
                self.max_concurrency = max(self.max_concurrency, self._active)
                stall = self._stalls.popleft() if self._stalls else 0.0
                failure = self._failures.popleft() if self._failures else None
                if self._die_after is not None:
                    self._die_after -= 1
                dying = self._die_after == 0
                if dying:
                    self._die_after = None
            try:
                self._sleep(self.latency_s + stall)
                if failure is None:
                    return handler(request), dying
                status, headers = failure
                response = self.error_response(status)
                response.headers.update(headers)
                return response, dying
            finally:
                with self._lock:
                    self._active -= 1


def _read_request(h: _RequestHandler) -> HttpRequest:
    received_at = time.monotonic()
    body = h.rfile.read(int(h.headers.get("content-length") or 0))
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    parts = urlsplit(h.path)
    return HttpRequest(
        method=h.command,
        path=parts.path,
        query=parse_qs(parts.query),
        headers={k.lower(): v for k, v in h.headers.items()},
        body=body,
        json=parsed,
        received_at=received_at,
    )


def _client_gone(connection: socket.socket) -> bool:
    """True when the peer has closed its side (readable, with nothing left to read)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _write_response(h: _RequestHandler, response: Response) -> None:
    try:
        h.send_response(response.status)
        for name, value in response.headers.items():
            h.send_header(name, value)
        if isinstance(response.body, bytes):
            h.send_header("content-length", str(len(response.body)))
            h.end_headers()
            h.wfile.write(response.body)
        else:
            h.send_header("transfer-encoding", "chunked")
            h.end_headers()
            for chunk in response.body:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()
    except OSError:
        h.close_connection = True


# Shared by the simulated LLM servers.


def render(reply: Reply) -> str:
    """The text of a responder's reply (dicts are JSON-dumped)."""
    return reply if isinstance(reply, str) else json.dumps(reply)


def mangle(text: str) -> str:
    """A malformed version of ``text``: its first half, as if generation broke off."""
    return text[: len(text) // 2]


def default_reply(schema: dict[str, Any] | None) -> Reply:
    """What the fakes answer by default: a minimal instance of the schema, else plain text."""
    return DEFAULT_TEXT if schema is None else minimal_instance(schema)


def content_text(content: str | list[dict[str, Any]] | None) -> str:
    """Plain text of a message's content (a string, or a list of content blocks)."""
    if isinstance(content, str):
        return content
    return "\n".join(b["text"] for b in content or [] if b.get("type") == "text")


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """Text of the last user message, or "" when there is none."""
    users = [m for m in messages if m.get("role") == "user"]
    return content_text(users[-1].get("content")) if users else ""


def minimal_instance(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A small JSON value that is valid against ``schema`` (required properties only)."""
    root = root or schema
    if "$ref" in schema:
        *_, section, name = schema["$ref"].split("/")
        return minimal_instance(root[section][name], root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return minimal_instance(options[0], root)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            name: minimal_instance(props.get(name, {}), root) for name in schema.get("required", [])
        }
    if kind == "array":
        items = schema.get("items", {})
        return [minimal_instance(items, root) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return _FORMATTED.get(schema.get("format", ""), "x" * schema.get("minLength", 0))
    if kind in ("integer", "number"):
        return _bounded_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None if kind == "null" else {}


_FORMATTED = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "uri": "https://example.com/",
    "email": "user@example.com",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def _bounded_number(schema: dict[str, Any], integer: bool) -> int | float:
    """0 when the bounds allow it, else a value inside them."""
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float
    if _within_bounds(schema, 0):
        value = 0
    elif lo is not None and hi is not None:
        value = (lo + hi) / 2
    elif lo is not None:
        value = lo if "minimum" in schema else lo + 1
    else:
        value = hi if "maximum" in schema else hi - 1
    return math.ceil(value) if integer else float(value)


def _within_bounds(schema: dict[str, Any], value: float) -> bool:
    low = schema.get("exclusiveMinimum", value - 1)
    high = schema.get("exclusiveMaximum", value + 1)
    return (
        schema.get("minimum", value) <= value <= schema.get("maximum", value) and low < value < high
    )
