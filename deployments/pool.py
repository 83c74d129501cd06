"""The deployments of prefect.yaml on a work pool, run by workers on any machine.

python -m deployments.pool POOL      (what `kb deploy --pool POOL` runs)

Every deployment keeps its schedules and limits (the pipeline's limit of 1 is held by the
Prefect server, so it holds across workers); a worker (`kb worker --pool POOL`, or
`prefect worker start --pool POOL`) runs each flow run from the project directory given.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists
from prefect.runner.storage import LocalStorage
from prefect.workers.process import ProcessWorker

from blocks import load_options, register_block_types
from creatorkb.settings import CostOptions
from deployments.serve import PROJECT, read_specs, settings_of

POOL_TYPE = "process"


def ensure_pool(name: str) -> None:
    """Create the process work pool `name` unless it exists."""
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        template = ProcessWorker.get_default_base_job_template()
        client.create_work_pool(
            WorkPoolCreate(name=name, type=POOL_TYPE, base_job_template=template)
        )


def deploy(pool: str, project: Path = PROJECT) -> list[str]:
    """Every deployment of prefect.yaml on `pool`, its code read from `project` on the worker's
    machine (the same path on each, e.g. a checkout or a shared volume); returns their names."""
    register_block_types()
    ensure_pool(pool)
    timezone = load_options(CostOptions).timezone
    names = []
    for spec in read_specs(project / "prefect.yaml"):
        deployment = RunnerDeployment.from_storage(
            storage=LocalStorage(str(project)),
            entrypoint=spec.entrypoint,
            work_pool_name=pool,
            **settings_of(spec, timezone),
        )
        deployment.apply(work_pool_name=pool)
        names.append(spec.name)
    return names


def main() -> None:
    pool = sys.argv[1] if len(sys.argv) > 1 else "kb"
    for name in deploy(pool):
        print(f"deployed  {name:<22} on work pool {pool}")


if __name__ == "__main__":
    main()
