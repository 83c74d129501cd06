"""The local model: Ollama's /api/chat through the official client.

Ollama silently cuts a prompt longer than the context window (`num_ctx`) and still answers
200. So every request sizes `num_ctx` from the model's context length and the prompt, and
every answer is checked: when the prompt filled the room reserved for the answer, it was cut,
and the answer is marked truncated (and never accepted).

`LocalModel` is every Ollama host kb uses (`KB_OLLAMA_HOSTS`, else `OLLAMA_HOST`): each call
takes the least busy host that has the model, holding one of its slots (`creatorkb.slots`)
for the request; a host found down is skipped until `reprobe_seconds` have passed.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from creatorkb.calls import ModelAnswer, ModelCall, ModelRequest, Purpose, Usage
from creatorkb.chunking import estimate_tokens
from creatorkb.errors import LocalModelMissing, LocalUnavailable
from creatorkb.gpu_time import charged_ns
from creatorkb.settings import OllamaOptions
from creatorkb.slots import HostSlots, ProcessSlots

T = TypeVar("T")

CONTEXT_SIZES = (2048, 4096, 8192, 16384, 32768, 65536, 131072)
LOOP_CHECK_EVERY = 16  # streamed pieces between checks for a loop
# With every host full, how soon a waiting process asks them all again, doubling up to the
# most: a slot another process frees stays idle at most that long, and a waiting process
# asks the Prefect server a few times a second.
SLOT_POLL_S = 0.05
SLOT_POLL_MAX_S = 0.5
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


class OllamaHost:
    """One Ollama server. Its slots are held by `LocalModel`, around each request."""

    provider = "ollama"

    def __init__(self, options: OllamaOptions, url: str | None = None) -> None:
        import ollama  # imported here: commands that never ask Ollama start faster

        self.options = options
        self.url = url or options.host
        self._client = ollama.Client(
            host=self.url,
            timeout=options.timeout_seconds,
            limits=httpx.Limits(
                max_connections=options.host_slots.get(self.url, options.parallel) * 2
            ),
        )
        self._context_lengths: dict[str, int] = {}
        self._installed: tuple[list[str], float] | None = None  # the models, and when read
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
            response = httpx.get(f"{self.url.rstrip('/')}/api/version", timeout=10)
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
        installed = sorted(model.model for model in listing.models if model.model)
        with self._lock:
            self._installed = (installed, time.monotonic())
        return installed

    def has_model(self, model: str) -> bool:
        """Whether the host has `model` (its list read again after `reprobe_seconds`);
        raises LocalUnavailable when it does not answer."""
        with self._lock:
            known = self._installed
        fresh = known and time.monotonic() - known[1] < max(self.options.reprobe_seconds, 1.0)
        installed = known[0] if known and fresh else self.installed_models()
        return model in installed or f"{model}:latest" in installed

    def check_model(self, model: str) -> None:
        """Raise LocalModelMissing, listing what Ollama has, when `model` is not installed."""
        installed = self.installed_models()
        if model in installed or f"{model}:latest" in installed:
            return
        raise LocalModelMissing(self.url, model, installed)

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
                raise LocalModelMissing(self.url, model) from error
            failed = f"Ollama at {self.url} failed: {error}"
            raise LocalUnavailable(failed, None) from error
        except (ConnectionError, httpx.HTTPError) as error:
            raise self._unreachable(error) from error
        info = shown.modelinfo or {}
        length = next((int(v) for k, v in info.items() if k.endswith(".context_length")), 4096)
        with self._lock:
            self._context_lengths[model] = length
        return length

    def _unreachable(self, error: Exception, call: ModelCall | None = None) -> LocalUnavailable:
        why = f"Ollama at {self.url} is unreachable ({type(error).__name__}: {error})"
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
        failed call, if Ollama fails. The caller holds one of the host's slots."""
        import ollama

        model = request.model or self.options.draft_model
        num_predict = request.output_limit(self.options.max_output_tokens)
        wanted = estimate_tokens(request.system) + estimate_tokens(request.user) + num_predict
        limit = min(self.context_length(model), self.options.max_num_ctx)
        num_ctx = context_size(wanted + 64, limit)
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
                    raise self._failure(error, model, request.purpose, started, attempt) from error
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
            busy_ns=charged_ns(self.url, busy),
            detail={
                "host": self.url,
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
            missing = LocalModelMissing(self.url, model)
            missing.call = call
            return missing
        return LocalUnavailable(
            f"Ollama at {self.url} failed: {type(error).__name__}: {error}", call
        )


class LocalModel:
    """Every Ollama host kb uses, each given as many requests at once as it has slots (its
    `hosts` entry's count, else `parallel`: more would only queue in Ollama), the slots shared
    through `slots` (this process's own count by default)."""

    provider = "ollama"

    def __init__(self, options: OllamaOptions, slots: HostSlots | None = None) -> None:
        self.options = options
        self.hosts = [OllamaHost(options, url) for url in options.host_list]
        self.parallel = sum(options.host_slots.values())  # requests served at once, in all
        self.slots = slots or ProcessSlots(options.host_slots)
        self._picked = itertools.count()  # breaks ties between equally busy hosts
        self._asking = threading.Lock()  # held by the one thread asking every host for a slot
        self._freed = threading.Condition()  # notified when this process lets a slot go

    @property
    def down(self) -> str | None:
        """Why no host is asked now, if none is."""
        reasons = [host.down for host in self.hosts]
        if any(reason is None for reason in reasons):
            return None
        return "; ".join(reason for reason in reasons if reason)

    def _up(self) -> list[OllamaHost]:
        return [host for host in self.hosts if host.down is None]

    # -- what the servers have ------------------------------------------------------

    def version(self) -> str:
        """The version of the first host that answers."""
        return self._first(lambda host: host.version())

    def installed_models(self) -> list[str]:
        """The models pulled on any host that answers."""
        found: set[str] = set()
        problems: list[LocalUnavailable] = []
        for host in self.hosts:
            try:
                found.update(host.installed_models())
            except LocalUnavailable as error:
                problems.append(error)
        if len(problems) == len(self.hosts):
            raise problems[0] if len(problems) == 1 else LocalUnavailable(_joined(problems), None)
        return sorted(found)

    def check_model(self, model: str) -> None:
        """Raise LocalModelMissing, listing what the hosts have, when none has `model`."""
        installed = self.installed_models()
        if model in installed or f"{model}:latest" in installed:
            return
        where = ", ".join(host.url for host in self.hosts)
        raise LocalModelMissing(where, model, installed)

    def context_length(self, model: str) -> int:
        """The model's trained context length (from a host that has it)."""
        return self._first(lambda host: host.context_length(model), model)

    def prompt_budget(self, model: str, system: str) -> int:
        """Estimated tokens of user text one request can carry whole."""
        return self._first(lambda host: host.prompt_budget(model, system), model)

    def _first(self, action: Callable[[OllamaHost], T], model: str | None = None) -> T:
        """`action` on the first host (that has `model`) that answers."""
        if len(self.hosts) == 1:
            return action(self.hosts[0])
        candidates = self._candidates(model) if model else self._up() or self.hosts
        problems: list[LocalUnavailable] = []
        for host in candidates:
            try:
                return action(host)
            except LocalUnavailable as error:
                problems.append(error)
        raise LocalUnavailable(_joined(problems) or self.down or "no Ollama host", None)

    def _candidates(self, model: str) -> list[OllamaHost]:
        """The hosts that are up and have `model` (one host: that host, unless it is down);
        raises LocalUnavailable (LocalModelMissing) when there is none."""
        if len(self.hosts) == 1:
            down = self.hosts[0].down
            if down:
                raise LocalUnavailable(down, None)
            return self.hosts
        having, missing = [], []
        for host in self._up():
            try:
                (having if host.has_model(model) else missing).append(host)
            except LocalUnavailable:
                continue  # found down now: skipped until it is probed again
        if having:
            return having
        if missing:
            raise LocalModelMissing(", ".join(host.url for host in missing), model)
        raise LocalUnavailable(self.down or "every Ollama host is unreachable", None)

    # -- generation -----------------------------------------------------------------

    def generate(self, request: ModelRequest) -> ModelAnswer:
        """One chat request on the least busy host that has the model, holding one of its
        slots; raises LocalUnavailable, with the failed call, if Ollama fails."""
        model = request.model or self.options.draft_model
        candidates = self._candidates(model)
        with self._slot(candidates) as host:
            return host.generate(request)

    @contextmanager
    def _slot(self, candidates: list[OllamaHost]) -> Iterator[OllamaHost]:
        """A slot on the least busy candidate that has one free (busy: the share of a host's
        slots held, across every process sharing them, so a host with more slots is given
        more requests). When every candidate is full, one thread of this process at a time
        asks them all again, at once when this process lets a slot go and after a wait that
        doubles up to SLOT_POLL_MAX_S otherwise: waiting on one host (Prefect's own retry
        waits a call's length, longer the more were refused) left a slot of another idle
        while a process slept on the first (docs/performance.md "Scale-out")."""
        if len(candidates) == 1:
            with self.slots.hold(candidates[0].url, wait=True):
                yield candidates[0]
            return
        held = self._free_slot(candidates)
        if held is None:
            with self._asking:
                wait = SLOT_POLL_S
                while (held := self._free_slot(candidates)) is None:
                    with self._freed:
                        self._freed.wait(timeout=wait)
                    wait = min(wait * 2, SLOT_POLL_MAX_S)
        host, slot = held
        try:
            with slot:
                yield host
        finally:
            with self._freed:
                self._freed.notify()

    def _free_slot(self, candidates: list[OllamaHost]) -> tuple[OllamaHost, ExitStack] | None:
        """A slot taken on the least busy candidate with one free, or None when all are full."""
        busy = self.slots.busy([host.url for host in candidates])
        sizes = self.options.host_slots
        turn = next(self._picked)
        ordered = sorted(
            enumerate(candidates),
            key=lambda pair: (
                busy.get(pair[1].url, 0) / sizes[pair[1].url],
                (pair[0] - turn) % len(candidates),
            ),
        )
        for _, host in ordered:
            slot = ExitStack()
            if slot.enter_context(self.slots.hold(host.url, wait=False)):
                return host, slot
            slot.close()
        return None


def _joined(problems: list[LocalUnavailable]) -> str:
    return "; ".join(str(problem) for problem in problems)


def _lasting(error: Exception) -> bool:
    """An error a retry cannot mend (a 4xx: a missing model, a bad request)."""
    import ollama

    return isinstance(error, ollama.ResponseError) and 400 <= error.status_code < 500
