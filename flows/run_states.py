"""What the Prefect server knows of the flow runs holding claims and reservations: a holder
whose flow run is in a terminal state has lapsed, on whatever machine it ran."""

from __future__ import annotations

import uuid

from creatorkb.liveness import Liveness


class PrefectRunStates:
    """RunStates read from the Prefect server this process uses."""

    def finished(self, flow_run_ids: set[str]) -> set[str]:
        ids = []
        for run_id in flow_run_ids:
            try:
                ids.append(uuid.UUID(run_id))
            except ValueError:
                continue  # not a Prefect flow run id: left to its expiry
        if not ids:
            return set()
        # Imported when a holder must be judged, not with this module: commands that run no
        # flow (`kb doctor`, `kb ledger unanswered`) use it and mostly never need Prefect.
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
            )
        return {str(run.id) for run in runs if run.state is not None and run.state.is_final()}


def liveness() -> Liveness:
    """Holders lapse by their PID on this host or by their flow run's state on the server."""
    return Liveness(PrefectRunStates())
