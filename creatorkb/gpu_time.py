"""The GPU's busy time as energy is charged for it: the union of busy intervals per host.

Ollama serves up to `OLLAMA_NUM_PARALLEL` requests at once, and each reports its own
`total_duration`; summing them would count a second of GPU time once per request in flight.
Each request is charged only for the part of its interval (its end minus its duration) that
no request already charged on the same host covered. The clock is per process: requests of
one run (its parallel tasks and threads) share it; separate processes on one GPU each count
their own (docs/performance.md says what that means for the figures).
"""

from __future__ import annotations

import threading
import time

KEEP_NS = 3_600 * 10**9  # intervals kept this long after the newest end: longer than any call


class BusyClock:
    """Busy intervals of one host, merged as they are charged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._intervals: list[tuple[int, int]] = []  # sorted, disjoint

    def charge(self, start_ns: int, end_ns: int) -> int:
        """The nanoseconds of [start_ns, end_ns] not charged before; now charged."""
        if end_ns <= start_ns:
            return 0
        with self._lock:
            covered = sum(
                min(end, end_ns) - max(start, start_ns)
                for start, end in self._intervals
                if start < end_ns and end > start_ns
            )
            merged_start, merged_end, kept = start_ns, end_ns, []
            for start, end in self._intervals:
                if end < merged_start or start > merged_end:
                    kept.append((start, end))
                else:
                    merged_start, merged_end = min(start, merged_start), max(end, merged_end)
            kept.append((merged_start, merged_end))
            horizon = max(end for _, end in kept) - KEEP_NS
            self._intervals = sorted(interval for interval in kept if interval[1] >= horizon)
            return (end_ns - start_ns) - covered


_clocks: dict[str, BusyClock] = {}
_clocks_lock = threading.Lock()


def charged_ns(host: str, busy_ns: int, end_ns: int | None = None) -> int:
    """What a request that kept `host` busy for `busy_ns`, ending now (or at `end_ns`), adds
    to the host's busy time."""
    with _clocks_lock:
        clock = _clocks.setdefault(host, BusyClock())
    end = time.time_ns() if end_ns is None else end_ns
    return clock.charge(end - busy_ns, end)
