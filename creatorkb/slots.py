"""Local-model slots: how many requests each Ollama host serves at once, and who holds them.

A GPU's slots belong to the whole system, not to one process: `kb prompt`, `kb ask` and
scheduled runs on every machine share them. The domain only says what it needs (`HostSlots`);
this process's own count (`ProcessSlots`) is the default, and the flows inject Prefect's
global concurrency limits (flows/slots.py), one per host, so every process shares them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol
from urllib.parse import urlsplit


def slot_name(host: str) -> str:
    """The name of a host's slots, the same in every process: `ollama:<host:port>`."""
    parts = urlsplit(host if "//" in host else f"http://{host}")
    return f"ollama:{parts.netloc or host}"


class HostSlots(Protocol):
    """The slots of each Ollama host, however they are shared."""

    def busy(self, hosts: list[str]) -> dict[str, int]:
        """Slots held now on each host (by every process that shares them)."""
        ...

    def hold(self, host: str, *, wait: bool) -> AbstractContextManager[bool]:
        """Hold one slot of `host` for the `with` block; yields False (holding nothing) when
        none is free and `wait` is False."""
        ...


class ProcessSlots:
    """Slots counted in this process only (the one-machine default): `slots` per host, or each
    host's own count (OllamaOptions.host_slots)."""

    def __init__(self, slots: int | Mapping[str, int]) -> None:
        self.slots = slots if isinstance(slots, int) else dict(slots)
        self._free: dict[str, threading.Semaphore] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def size(self, host: str) -> int:
        """How many requests `host` serves at once."""
        if isinstance(self.slots, int):
            return self.slots
        if host not in self.slots:
            raise LookupError(f"no slot count for Ollama host {host}: it is not a host kb uses")
        return self.slots[host]

    def _slots(self, host: str) -> threading.Semaphore:
        with self._lock:
            if host not in self._free:
                self._free[host] = threading.BoundedSemaphore(self.size(host))
            return self._free[host]

    def busy(self, hosts: list[str]) -> dict[str, int]:
        with self._lock:
            return {host: self._held.get(host, 0) for host in hosts}

    @contextmanager
    def hold(self, host: str, *, wait: bool) -> Iterator[bool]:
        slots = self._slots(host)
        if not slots.acquire(blocking=wait):
            yield False
            return
        with self._lock:
            self._held[host] = self._held.get(host, 0) + 1
        try:
            yield True
        finally:
            with self._lock:
                self._held[host] -= 1
            slots.release()
