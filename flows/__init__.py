"""The Prefect flows (each one module), and what every flow process shares.

A flow process runs its tasks, DuckDB's and Prefect's own work in dozens of threads, and
glibc gives each thread its own malloc arena (up to eight per core) that keeps what it freed
of transcripts and answers as resident memory: the analyse run's memory grew with every
video (docs/performance.md, "Memory"). Two arenas keep it flat; MALLOC_ARENA_MAX, when the
owner set it, is left as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def _fewer_malloc_arenas() -> None:
    if sys.platform != "linux" or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:  # not glibc (musl has no mallopt): nothing to tune
        return
    mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


_fewer_malloc_arenas()
