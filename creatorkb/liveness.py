"""Which process holds a claim or reservation, and whether it still holds it.

Claims and reservations carry their holder (`host:pid`) and the flow run that made them.
Workers may run on many machines, so a holder lapses (its claims can be taken at once, not
only when they expire) when

- the flow run holding it is in a terminal state (completed, failed, crashed, cancelled),
  as the Prefect server says: `RunStates`, injected by the flows (flows/run_states.py); or
- it is a process of this host that no longer runs (killed, crashed): the one-machine case,
  needing nothing but the PID.

A holder on another machine whose flow run the server does not know as finished is left
alone until its claim expires.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable
from typing import Protocol

HOST = socket.gethostname()

Holder = tuple[str | None, str | None]  # (holder host:pid, flow run id)


def this_process() -> str:
    """`host:pid` of the running process."""
    return f"{HOST}:{os.getpid()}"


def is_gone(holder: str | None) -> bool:
    """True when `holder` is a process of this host that no longer runs."""
    if not holder:
        return False
    host, _, pid = holder.rpartition(":")
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RunStates(Protocol):
    """What the orchestrator knows of flow runs."""

    def finished(self, flow_run_ids: set[str]) -> set[str]:
        """Of these flow runs, those in a terminal state (unknown ones are not)."""
        ...


class Liveness:
    """Decides which holders have lapsed: by the PID on this host, and by their flow run's
    state when `runs` is given. A finished flow run stays finished, so it is asked once."""

    def __init__(self, runs: RunStates | None = None) -> None:
        self.runs = runs
        self._finished: set[str] = set()
        self._lock = threading.Lock()

    def lapsed(self, holders: Iterable[Holder]) -> set[Holder]:
        """The holders among `holders` that no longer hold anything."""
        pending = set(holders)
        gone = {h for h in pending if is_gone(h[0])}
        me = this_process()
        ask = {run for holder, run in pending - gone if run and holder != me}
        if ask and self.runs is not None:
            with self._lock:
                unknown = ask - self._finished
            if unknown:
                finished = self.runs.finished(unknown)
                with self._lock:
                    self._finished |= finished
            with self._lock:
                gone |= {h for h in pending if h[1] in self._finished}
        return gone


LOCAL = Liveness()  # the PID check only: what a process without an orchestrator can know
