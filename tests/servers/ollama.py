"""FakeOllama: a loopback server speaking Ollama's native REST API (``/api/*``)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.servers.base import (
    HttpRequest,
    LoopbackServer,
    Reply,
    Response,
    default_reply,
    json_response,
    last_user_text,
    mangle,
    render,
)
from tests.servers.tokens import count_tokens, split_tokens, truncate_back, truncate_front

DEFAULT_MODELS = {"llama3.2": 8192, "qwen2.5:7b": 32768, "mistral": 32768}
EMBEDDING_MODELS = {"nomic-embed-text": 768}  # name -> embedding length (context 2048)
EMBED_CONTEXT = 2048
DEFAULT_NUM_CTX = 4096  # recent Ollama's context window when options.num_ctx is absent
DEFAULT_KEEP_ALIVE_S = 300.0
FOREVER_S = (2**63 - 1) / 1e9  # Go's max Duration: what a negative keep_alive means
MODIFIED_AT = "2025-10-01T09:30:00.123456789+02:00"
THINKING_TEXT = "Let me work through the request step by step."
WARM_LOAD_NS = 2_500_000
_ERROR_MESSAGES = {
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}
_FAMILIES = {
    "mistral": "llama",
    "qwen2.5": "qwen2",
    "qwen3": "qwen3",
    "gemma3": "gemma3",
    "nomic-embed-text": "nomic-bert",
    "mxbai-embed-large": "bert",
}
_TASK_PREFIX = re.compile(r"^(search_query|search_document|classification|clustering): ")
_EMBED_WORD = re.compile(r"\w+")
_DURATION_RE = re.compile(r"(-?)((?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+)")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class ChatRequest:
    """A chat request as the model sees it, after any silent context truncation."""

    model: str  # the configured model name it resolved to
    messages: list[dict[str, Any]]  # the visible (possibly truncated) messages
    format: str | dict[str, Any] | None
    options: dict[str, Any]
    num_ctx: int  # effective context window
    prompt_tokens: int  # tokens of the visible messages (reported as prompt_eval_count)
    truncated: bool
    stream: bool
    think: bool | str | None
    keep_alive: float | str | None

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON schema asked for (``format: "json"`` means any object)."""
        if isinstance(self.format, dict):
            return self.format
        return {"type": "object"} if self.format == "json" else None

    @property
    def system(self) -> str:
        """Text of the visible system messages."""
        return "\n".join(_text(m) for m in self.messages if m.get("role") == "system")

    @property
    def user(self) -> str:
        """Text of the last visible user message."""
        return last_user_text(self.messages)


@dataclass(frozen=True)
class Repeat:
    """A reply that loops, as small models do: `head`, then `unit` again and again until the
    request's `num_predict` runs out (the answer then ends with done_reason "length")."""

    head: str
    unit: str


Responder = Callable[[ChatRequest], "Reply | Repeat"]


def _default_responder(request: ChatRequest) -> Reply:
    return default_reply(request.schema)


class FakeOllama(LoopbackServer):
    """Ollama's REST API: version, tags, show, ps and chat (streaming or not).

    Like the real server it silently truncates prompts longer than the context window,
    reports nanosecond timings derived from ``prompt_tps``/``eval_tps``, and charges a
    simulated ``cold_load_s`` when a model (or a new ``num_ctx`` for it) is first loaded.
    """

    def __init__(
        self,
        models: dict[str, int] | None = None,
        *,
        parallel: int = 4,
        latency_s: float = 0.0,
        version: str = "0.12.6",
        prompt_tps: float = 800.0,
        eval_tps: float = 50.0,
        cold_load_s: float = 1.5,
        thinking_models: Iterable[str] = (),
        embedding_models: dict[str, int] | None = None,
    ) -> None:
        super().__init__(parallel=parallel, latency_s=latency_s)
        self.models = dict(DEFAULT_MODELS if models is None else models)
        # Embedding models (name -> vector length); none unless a test pulls one.
        self.embedding_models = dict(embedding_models or {})
        self.embeds: list[dict[str, Any]] = []  # every answered /api/embed body
        self.version = version
        self.prompt_tps = prompt_tps
        self.eval_tps = eval_tps
        self.cold_load_s = cold_load_s
        self.thinking_models = set(thinking_models)
        self.responder: Responder = _default_responder
        self.chats: list[ChatRequest] = []
        self.replies: list[dict[str, Any]] = []  # the final metrics of every answer
        self.token_delay_s = 0.0  # per streamed token: how long generating one takes
        self.streamed: list[tuple[int, int]] = []  # per stream: (pieces sent, pieces in all)
        self._loaded: dict[str, tuple[float, int]] = {}  # model -> (expires_at, num_ctx)
        self.route("GET", "/", self._root, limited=False)
        self.route("GET", "/api/version", self._version, limited=False)
        self.route("GET", "/api/tags", self._tags, limited=False)
        self.route("POST", "/api/show", self._show, limited=False)
        self.route("GET", "/api/ps", self._ps, limited=False)
        self.route("POST", "/api/chat", self._chat)
        self.route("POST", "/api/embed", self._embed)

    # faults and counters

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` chat requests with ``status`` and Ollama's error JSON."""
        self._fail_next([status] * n)

    @property
    def chat_counts(self) -> Counter[str]:
        """Chat requests received per model (every attempt, whatever its outcome)."""
        names = (str((r.json or {}).get("model")) for r in self.requests_to("/api/chat"))
        return Counter(self.resolve(name) or name for name in names)

    def error_response(self, status: int, message: str | None = None) -> Response:
        """Ollama's ``{"error": ...}`` body."""
        return super().error_response(status, message or _ERROR_MESSAGES.get(status))

    def resolve(self, name: str) -> str | None:
        """The configured model ``name`` refers to (``llama3.2`` is ``llama3.2:latest``)."""
        for model in [*self.models, *self.embedding_models]:
            if _full_name(model) == _full_name(name):
                return model
        return None

    # endpoints

    def _root(self, _: HttpRequest) -> Response:
        return Response(200, b"Ollama is running", {"content-type": "text/plain; charset=utf-8"})

    def _version(self, _: HttpRequest) -> Response:
        return json_response({"version": self.version})

    def _tags(self, _: HttpRequest) -> Response:
        names = [*self.models, *self.embedding_models]
        models = [{**_identity(m), "modified_at": MODIFIED_AT} for m in names]
        return json_response({"models": models})

    def _show(self, request: HttpRequest) -> Response:
        name = str((request.json or {}).get("model"))
        model = self.resolve(name)
        if model is None:
            return self.error_response(404, f"model '{name}' not found")
        family = _family(model)
        if model in self.embedding_models:
            return json_response(
                {
                    "license": "",
                    "modelfile": f"FROM {_full_name(model)}\n",
                    "parameters": "",
                    "template": "",
                    "details": _details(model),
                    "model_info": {
                        "general.architecture": family,
                        "general.parameter_count": 136_727_040,
                        f"{family}.context_length": EMBED_CONTEXT,
                        f"{family}.embedding_length": self.embedding_models[model],
                    },
                    "capabilities": ["embedding"],
                    "modified_at": MODIFIED_AT,
                }
            )
        thinking = ["thinking"] if model in self.thinking_models else []
        return json_response(
            {
                "license": "",
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {_full_name(model)}\n',
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": _details(model),
                "model_info": {
                    "general.architecture": family,
                    "general.parameter_count": _parameter_count(model),
                    f"{family}.context_length": self.models[model],
                    f"{family}.embedding_length": 4096,
                },
                "capabilities": ["completion", "tools", *thinking],
                "modified_at": MODIFIED_AT,
            }
        )

    def _ps(self, _: HttpRequest) -> Response:
        now = time.time()
        with self._lock:
            loaded = {m: v for m, v in self._loaded.items() if v[0] > now}
        models = [
            {
                **_identity(model),
                "expires_at": _rfc3339(int(expires_at * 1e9)),
                "size_vram": _size(model),
                "context_length": num_ctx,
            }
            for model, (expires_at, num_ctx) in loaded.items()
        ]
        return json_response({"models": models})

    def _chat(self, request: HttpRequest) -> Response:
        body = request.json or {}
        name = body.get("model")
        if not name:
            return self.error_response(400, "model is required")
        model = self.resolve(name)
        if model is None or model not in self.models:
            return self.error_response(404, f"model '{name}' not found")
        think = body.get("think")
        if think and model not in self.thinking_models:
            return self.error_response(400, f'"{name}" does not support thinking')
        try:
            keep_alive_s = _keep_alive_seconds(body.get("keep_alive"))
        except ValueError as exc:
            return self.error_response(400, str(exc))
        options = body.get("options") or {}
        num_ctx = min(options.get("num_ctx") or DEFAULT_NUM_CTX, self.models[model])
        load_ns = self._load(model, num_ctx, keep_alive_s)
        messages = body.get("messages") or []
        if not messages:
            reason = "unload" if keep_alive_s == 0 else "load"
            return json_response({**self._head(name, ""), "done_reason": reason, "done": True})
        visible = _truncate(messages, num_ctx)
        chat = ChatRequest(
            model=model,
            messages=visible,
            format=body.get("format") or None,
            options=options,
            num_ctx=num_ctx,
            prompt_tokens=sum(count_tokens(_text(m)) for m in visible),
            truncated=visible != messages,
            stream=body.get("stream", True) is not False,
            think=think,
            keep_alive=body.get("keep_alive"),
        )
        with self._lock:
            self.chats.append(chat)
        return self._answer(request, name, chat, load_ns)

    def _embed(self, request: HttpRequest) -> Response:
        """Like Ollama: every input embedded and L2-normalised, cut to ``dimensions`` (then
        normalised again) when that is shorter, token count and nanosecond timings reported."""
        body = request.json or {}
        name = str(body.get("model") or "")
        model = self.resolve(name) if name else None
        if model is None or model not in self.embedding_models:
            return self.error_response(404, f'model "{name}" not found, try pulling it first')
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        if not all(isinstance(text, str) for text in inputs):
            return self.error_response(400, "invalid input type")
        try:
            keep_alive_s = _keep_alive_seconds(body.get("keep_alive"))
        except ValueError as exc:
            return self.error_response(400, str(exc))
        load_ns = self._load(model, EMBED_CONTEXT, keep_alive_s)
        length = self.embedding_models[model]
        dimensions = int(body.get("dimensions") or 0)
        vectors = []
        for text in inputs:
            vector = embed_words(text, length)
            if 0 < dimensions < length:
                vector = _unit(vector[:dimensions])
            vectors.append(vector)
        tokens = sum(min(count_tokens(text), EMBED_CONTEXT) for text in inputs)
        prompt_ns = int(tokens / self.prompt_tps * 1e9)
        wall_ns = int((time.monotonic() - request.received_at) * 1e9)
        reply = {
            "model": name,
            "embeddings": vectors,
            "total_duration": load_ns + prompt_ns + wall_ns,
            "load_duration": load_ns,
            "prompt_eval_count": tokens,
        }
        with self._lock:
            self.embeds.append({**body, "reply_tokens": tokens})
        return json_response(reply)

    # helpers

    def _answer(self, request: HttpRequest, name: str, chat: ChatRequest, load_ns: int) -> Response:
        reply = self.responder(chat)
        if isinstance(reply, Repeat):
            budget = chat.options.get("num_predict") or 4096
            times = budget // max(count_tokens(reply.unit), 1) + 1
            content = reply.head + reply.unit * times
        else:
            content = render(reply)
        if self._take_malformed():
            content = mangle(content)
        done_reason = "stop"
        num_predict = chat.options.get("num_predict") or 0
        if 0 < num_predict < count_tokens(content):
            content, done_reason = truncate_back(content, num_predict), "length"
        thinking = THINKING_TEXT if chat.think else ""
        eval_count = count_tokens(thinking) + count_tokens(content)
        prompt_ns = int(chat.prompt_tokens / self.prompt_tps * 1e9)
        eval_ns = int(eval_count / self.eval_tps * 1e9)
        wall_ns = int((time.monotonic() - request.received_at) * 1e9)
        final = {
            "done_reason": done_reason,
            "done": True,
            "total_duration": load_ns + prompt_ns + eval_ns + wall_ns,
            "load_duration": load_ns,
            "prompt_eval_count": chat.prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": eval_count,
            "eval_duration": eval_ns,
        }
        with self._lock:
            self.replies.append({"model": name, **final})
        if not chat.stream:
            return json_response({**self._head(name, content, thinking), **final})
        pieces = [self._head(name, "", thinking)] if thinking else []
        pieces += [self._head(name, piece) for piece in split_tokens(content)]
        lines = [{**p, "done": False} for p in pieces] + [{**self._head(name, ""), **final}]
        return Response(200, self._stream(lines), {"content-type": "application/x-ndjson"})

    def _stream(self, lines: list[dict[str, Any]]) -> Iterator[bytes]:
        """The stream's lines, one token's time apart; counts how many a client took."""
        with self._lock:
            index = len(self.streamed)
            self.streamed.append((0, len(lines)))
        for sent, line in enumerate(lines, start=1):
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            with self._lock:
                self.streamed[index] = (sent, len(lines))
            yield json.dumps(line).encode() + b"\n"

    def _head(self, model: str, content: str, thinking: str = "") -> dict[str, Any]:
        message = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        return {"model": model, "created_at": _rfc3339(time.time_ns()), "message": message}

    def _load(self, model: str, num_ctx: int, keep_alive_s: float) -> int:
        """Load ``model`` with ``num_ctx`` for ``keep_alive_s``; the load duration in ns."""
        now = time.time()
        with self._lock:
            expires_at, loaded_ctx = self._loaded.get(model, (0.0, 0))
            warm = expires_at > now and loaded_ctx == num_ctx
            if keep_alive_s == 0:
                self._loaded.pop(model, None)
            else:
                self._loaded[model] = (now + keep_alive_s, num_ctx)
        return WARM_LOAD_NS if warm else int(self.cold_load_s * 1e9)


def embed_words(text: str, length: int) -> list[float]:
    """A deterministic embedding: a hashed bag of (crudely stemmed) words, so texts sharing
    words are near. Like Matryoshka-trained models, each word also lands in the first 64 and
    the first 256 dimensions, so a vector cut short keeps its meaning. A task prefix such as
    ``search_query: `` is read as the task, as nomic-embed-text reads it, not as content."""
    vector = [0.0] * length
    for word in _EMBED_WORD.findall(_TASK_PREFIX.sub("", text).casefold()):
        digest = hashlib.sha256(_stem(word).encode()).digest()
        sign = 1.0 if digest[0] % 2 else -1.0
        for offset, size in ((1, 64), (3, 256), (5, length)):
            bucket = int.from_bytes(digest[offset : offset + 2], "big") % min(size, length)
            vector[bucket] += sign
    if not any(vector):
        vector[0] = 1.0
    return _unit(vector)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(value * value for value in vector)) or 1e-12
    return [value / norm for value in vector]


def _text(message: dict[str, Any]) -> str:
    return message.get("content") or ""


def _truncate(messages: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Cut tokens from the front, oldest non-system content first, until ``limit`` remain."""
    sizes = [count_tokens(_text(m)) for m in messages]
    excess = sum(sizes) - limit
    if excess <= 0:
        return messages
    kept = list(messages)
    for i in sorted(range(len(messages)), key=lambda i: messages[i].get("role") == "system"):
        cut = min(excess, sizes[i])
        if cut:
            kept[i] = {**messages[i], "content": truncate_front(_text(messages[i]), sizes[i] - cut)}
            excess -= cut
    return [m for m, size in zip(kept, sizes, strict=True) if not size or count_tokens(_text(m))]


def _keep_alive_seconds(value: float | str | None) -> float:
    """Seconds to keep a model loaded: numbers are seconds, strings Go durations, <0 forever."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, int | float):
        seconds = float(value)
    elif value == "0":
        seconds = 0.0
    elif match := _DURATION_RE.fullmatch(value):
        sign = -1 if match[1] else 1
        parts = _DURATION_PART_RE.findall(match[2])
        seconds = sign * sum(float(n) * _UNIT_S[unit] for n, unit in parts)
    else:
        raise ValueError(f'time: invalid duration "{value}"')
    return FOREVER_S if seconds < 0 else seconds


def _identity(model: str) -> dict[str, Any]:
    return {
        "name": _full_name(model),
        "model": _full_name(model),
        "size": _size(model),
        "digest": _digest(model),
        "details": _details(model),
    }


def _full_name(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def _family(model: str) -> str:
    base = model.split(":")[0]
    return _FAMILIES.get(base) or re.sub(r"[^a-z].*", "", base) or "llama"


def _parameter_count(model: str) -> int:
    tag = re.search(r":(\d+(?:\.\d+)?)b", model)
    return int(float(tag[1]) * 1e9) if tag else 3_212_749_888


def _details(model: str) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": _family(model),
        "families": [_family(model)],
        "parameter_size": f"{_parameter_count(model) / 1e9:.1f}B",
        "quantization_level": "Q4_K_M",
    }


def _digest(model: str) -> str:
    return hashlib.sha256(_full_name(model).encode()).hexdigest()


def _size(model: str) -> int:
    return _parameter_count(model) * 5 // 8  # ~Q4_K_M bytes per parameter


def _rfc3339(ns: int) -> str:
    seconds, fraction = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"
