"""The local model: Ollama's /api/chat through the official client.

Ollama silently cuts a prompt longer than the context window (`num_ctx`) and still answers
200. So every request sizes `num_ctx` from the model's context length and the prompt, and
every answer is checked: when the prompt filled the room reserved for the answer, it was cut,
and the answer is marked truncated (and never accepted).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from creatorkb.calls import ModelAnswer, ModelCall, ModelRequest, Purpose, Usage
from creatorkb.chunking import estimate_tokens
from creatorkb.errors import LocalModelMissing, LocalUnavailable
from creatorkb.gpu_time import charged_ns
from creatorkb.settings import OllamaOptions

CONTEXT_SIZES = (2048, 4096, 8192, 16384, 32768, 65536, 131072)
LOOP_CHECK_EVERY = 16  # streamed pieces between checks for a loop
# The same string of 16+ characters three times in a row (a list stuck on one item).
_SAME_ITEM = re.compile(r'("(?:[^"\\]|\\.){16,}")(?:\s*,\s*\1){2,}')


def context_size(wanted: int, limit: int) -> int:
    """The smallest of a few fixed context sizes that holds `wanted` tokens, within `limit`:
    Ollama reloads the model whenever `num_ctx` changes, so kb asks for few distinct ones."""
    fitting = [size for size in CONTEXT_SIZES if size >= wanted]
    return min(fitting[0] if fitting else CONTEXT_SIZES[-1], limit)


def repetition(text: str) -> str | None:
    """Why `text` looks like a model stuck in a loop, or None: one item three times in a row,
    or its last 80 characters four times (a cycle of items). A record may quote one passage
    in several places; it does not list it again and again."""
    same = _SAME_ITEM.search(text)
    if same:
        return f"the answer repeats {same[1][:60]} again and again: it started to loop"
    tail = text[-80:]
    if len(tail) == 80 and text.count(tail) >= 4:
        return "the answer repeats its last passage over and over: it started to loop"
    return None


@dataclass(frozen=True)
class _Streamed:
    text: str
    final: Any  # ollama's last ChatResponse, with the counts and durations; None if stopped
    stopped: str | None


class LocalModel:
    """Ollama, at most `parallel` requests at once (more would only queue in Ollama)."""

    provider = "ollama"

    def __init__(self, options: OllamaOptions) -> None:
        import ollama  # imported here: commands that never ask Ollama start faster

        self.options = options
        self._client = ollama.Client(
            host=options.host,
            timeout=options.timeout_seconds,
            limits=httpx.Limits(max_connections=options.parallel * 2),
        )
        self.parallel = options.parallel
        self._slots = threading.BoundedSemaphore(options.parallel)
        self._context_lengths: dict[str, int] = {}
        self._lock = threading.Lock()
        # Why and when Ollama was found unreachable: it is not asked until `reprobe_seconds`
        # have passed, then the next request tries it again (and clears this if it answers).
        self._down: tuple[str, float] | None = None

    @property
    def down(self) -> str | None:
        """Why Ollama is not asked now, if it is not."""
        with self._lock:
            if self._down is None:
                return None
            why, since = self._down
            return why if time.monotonic() - since < self.options.reprobe_seconds else None

    # -- what the server has ------------------------------------------------------

    def version(self) -> str:
        """Ollama's version (the client has no call for it)."""
        try:
            response = httpx.get(f"{self.options.host.rstrip('/')}/api/version", timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise self._unreachable(error) from error
        return str(response.json().get("version", "unknown"))

    def installed_models(self) -> list[str]:
        """Names of the models pulled on the server."""
        import ollama

        try:
            listing = self._client.list()
        except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as error:
            raise self._unreachable(error) from error
        return sorted(model.model for model in listing.models if model.model)

    def check_model(self, model: str) -> None:
        """Raise LocalModelMissing, listing what Ollama has, when `model` is not installed."""
        installed = self.installed_models()
        if model in installed or f"{model}:latest" in installed:
            return
        raise LocalModelMissing(self.options.host, model, installed)

    def context_length(self, model: str) -> int:
        """The model's trained context length, from /api/show (asked once per model)."""
        import ollama

        with self._lock:
            if model in self._context_lengths:
                return self._context_lengths[model]
        try:
            shown = self._client.show(model)
        except ollama.ResponseError as error:
            if error.status_code == 404:
                raise LocalModelMissing(self.options.host, model) from error
            failed = f"Ollama at {self.options.host} failed: {error}"
            raise LocalUnavailable(failed, None) from error
        except (ConnectionError, httpx.HTTPError) as error:
            raise self._unreachable(error) from error
        info = shown.modelinfo or {}
        length = next((int(v) for k, v in info.items() if k.endswith(".context_length")), 4096)
        with self._lock:
            self._context_lengths[model] = length
        return length

    def _unreachable(self, error: Exception, call: ModelCall | None = None) -> LocalUnavailable:
        why = f"Ollama at {self.options.host} is unreachable ({type(error).__name__}: {error})"
        with self._lock:
            self._down = (why, time.monotonic())
        return LocalUnavailable(why, call)

    def prompt_budget(self, model: str, system: str) -> int:
        """Estimated tokens of user text one request can carry whole."""
        window = min(self.context_length(model), self.options.max_num_ctx)
        reserve = self.options.max_output_tokens + estimate_tokens(system) + 64
        return max(window - reserve, 256)

    # -- generation --------------------------------------------------------------

    def generate(self, request: ModelRequest) -> ModelAnswer:
        """One chat request (the draft model unless the request names one), streamed and
        stopped early when it starts to repeat itself; raises LocalUnavailable, with the
        failed call, if Ollama fails."""
        import ollama

        model = request.model or self.options.draft_model
        num_predict = request.output_limit(self.options.max_output_tokens)
        wanted = estimate_tokens(request.system) + estimate_tokens(request.user) + num_predict
        limit = min(self.context_length(model), self.options.max_num_ctx)
        num_ctx = context_size(wanted + 64, limit)
        with self._slots:
            down = self.down
            if down:  # found down while this request waited for a slot
                raise LocalUnavailable(down, None)
            started = time.perf_counter()
            for attempt in range(self.options.retries + 1):
                if attempt:  # a blip is not an outage: try again after a growing pause
                    time.sleep(self.options.retry_delay_seconds * 2 ** (attempt - 1))
                try:
                    streamed = self._stream(request, model, num_ctx, num_predict)
                    break
                except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as error:
                    if _lasting(error) or attempt == self.options.retries:
                        raise self._failure(
                            error, model, request.purpose, started, attempt
                        ) from error
        with self._lock:
            self._down = None  # it answered
        latency = (time.perf_counter() - started) * 1000
        final = streamed.final
        prompt_tokens = (final.prompt_eval_count or 0) if final else 0
        output_tokens = (final.eval_count or 0) if final else 0
        # The prompt ate into the room kept for the answer: Ollama must have cut it.
        cut = final is not None and prompt_tokens + num_predict >= num_ctx
        # A stopped answer reports no durations: the GPU was busy for the wall time.
        busy = (final.total_duration or 0) if final else int(latency * 1e6)
        call = ModelCall(
            "ollama",
            model,
            request.purpose,
            Usage(input_tokens=prompt_tokens, output_tokens=output_tokens),
            latency,
            busy_ns=charged_ns(self.options.host, busy),
            detail={
                "host": self.options.host,
                "busy_ms": round(busy / 1e6, 1),  # this request's own GPU time
                "num_ctx": num_ctx,
                "num_predict": num_predict,
                "attempts": attempt + 1,
                "prompt_truncated": cut,
                "done_reason": final.done_reason if final else "stopped",
                "load_ms": round((final.load_duration or 0) / 1e6, 1) if final else None,
                "stopped": streamed.stopped,
            },
        )
        answer_cut = final is not None and final.done_reason == "length"
        return ModelAnswer(call, streamed.text, cut, answer_cut, streamed.stopped)

    def _stream(
        self, request: ModelRequest, model: str, num_ctx: int, num_predict: int
    ) -> _Streamed:
        """The answer as it streams in; abandoned (Ollama then stops generating) once it
        repeats itself."""
        stream = self._client.chat(
            model=model,
            messages=[
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user},
            ],
            format=request.schema,
            options={"num_ctx": num_ctx, "num_predict": num_predict, "temperature": 0},
            keep_alive=self.options.keep_alive,
            stream=True,
        )
        pieces: list[str] = []
        try:
            for index, part in enumerate(stream):
                pieces.append(part.message.content or "")
                if part.done:
                    return _Streamed("".join(pieces), part, None)
                if index % LOOP_CHECK_EVERY == LOOP_CHECK_EVERY - 1:
                    looping = repetition("".join(pieces))
                    if looping:
                        return _Streamed("".join(pieces), None, looping)
        finally:
            stream.close()
        return _Streamed("".join(pieces), None, "the answer ended without its final message")

    def _failure(
        self, error: Exception, model: str, purpose: Purpose, started: float, attempt: int
    ) -> LocalUnavailable:
        import ollama

        latency = (time.perf_counter() - started) * 1000
        call = ModelCall(
            "ollama",
            model,
            purpose,
            Usage(),
            latency,
            type(error).__name__,
            detail={"attempts": attempt + 1},
        )
        if isinstance(error, ConnectionError | httpx.TransportError):
            return self._unreachable(error, call)
        if isinstance(error, ollama.ResponseError) and error.status_code == 404:
            missing = LocalModelMissing(self.options.host, model)
            missing.call = call
            return missing
        return LocalUnavailable(
            f"Ollama at {self.options.host} failed: {type(error).__name__}: {error}", call
        )


def _lasting(error: Exception) -> bool:
    """An error a retry cannot mend (a 4xx: a missing model, a bad request)."""
    import ollama

    return isinstance(error, ollama.ResponseError) and 400 <= error.status_code < 500
