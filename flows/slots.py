"""Ollama slots as Prefect global concurrency limits: one per host, sized by its own slot
count (KB_OLLAMA_HOSTS `URL=SLOTS`, else KB_OLLAMA_PARALLEL), so that every process on every
machine talking to the same Prefect server shares them.

A slot is held with a lease the Prefect client renews while the request runs: a process that
is killed holding one gives it back when the lease runs out. Threads of one process first
take turns on its own count of the same size (`ProcessSlots`): a thread waiting for a slot
this process frees is woken at once, where waiting on the server means polling it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists

from creatorkb.slots import ProcessSlots, slot_name


class PrefectSlots:
    """HostSlots on the Prefect server: a global concurrency limit `ollama:<host:port>` per host."""

    def __init__(self, host_slots: Mapping[str, int]) -> None:
        """`host_slots`: each host and the requests it serves at once (its limit's size)."""
        self._here = ProcessSlots(host_slots)  # this process's share, in front of the server's
        with get_client(sync_client=True) as client:
            for host, size in host_slots.items():
                name = slot_name(host)
                try:
                    client.upsert_global_concurrency_limit_by_name(name, size)
                except ObjectAlreadyExists:  # another process created it first
                    client.upsert_global_concurrency_limit_by_name(name, size)

    def busy(self, hosts: list[str]) -> dict[str, int]:
        names = {slot_name(host): host for host in hosts}
        with get_client(sync_client=True) as client:
            limits = client.read_global_concurrency_limits(limit=200)
        held = {limit.name: limit.active_slots for limit in limits}
        return {host: held.get(name, 0) for name, host in names.items()}

    @contextmanager
    def hold(self, host: str, *, wait: bool) -> Iterator[bool]:
        retries = None if wait else 0  # no retry: a full limit answers at once
        with ExitStack() as held:
            if not held.enter_context(self._here.hold(host, wait=wait)):
                yield False
                return
            try:
                held.enter_context(
                    concurrency(slot_name(host), occupy=1, strict=True, max_retries=retries)
                )
            except ConcurrencySlotAcquisitionError:
                if wait:
                    raise
                yield False
                return
            yield True
