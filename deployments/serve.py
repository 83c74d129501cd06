"""Serve every deployment of prefect.yaml from one process, on its schedules, with no worker.

python -m deployments.serve        (what `kb up` runs beside the Prefect server)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron, Interval, Schedule

from blocks import load_options, register_block_types
from creatorkb.settings import CostOptions

PROJECT = Path(__file__).resolve().parent.parent
PREFECT_YAML = PROJECT / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    """One entry of prefect.yaml's `deployments`."""

    name: str
    entrypoint: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: dict[str, Any] | None = None


def read_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """The deployments prefect.yaml declares."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [DeploymentSpec(**entry) for entry in document["deployments"]]


def _schedule(spec: dict[str, Any], timezone: str) -> Schedule:
    zone = spec.get("timezone") or timezone
    if "cron" in spec:
        return Cron(spec["cron"], timezone=zone)
    anchor = spec.get("anchor_date")
    return Interval(
        timedelta(seconds=spec["interval"]),
        anchor_date=datetime.fromisoformat(anchor) if anchor else None,
        timezone=zone,
    )


def settings_of(spec: DeploymentSpec, timezone: str) -> dict[str, Any]:
    """What a deployment of `spec` is, wherever it runs; schedules default to `timezone`."""
    limit = ConcurrencyLimitConfig(**spec.concurrency_limit) if spec.concurrency_limit else None
    return {
        "name": spec.name,
        "description": spec.description,
        "tags": spec.tags,
        "schedules": [_schedule(schedule, timezone) for schedule in spec.schedules],
        "concurrency_limit": limit,
    }


def build(spec: DeploymentSpec, timezone: str) -> RunnerDeployment:
    """A deployment served from this process; schedules default to `timezone`."""
    flow = load_flow_from_entrypoint(str(PROJECT / spec.entrypoint))
    return flow.to_deployment(**settings_of(spec, timezone))


def main() -> None:
    register_block_types()
    timezone = load_options(CostOptions).timezone
    # `kb up` prints what is served and how to reach it; Prefect's own banner would suggest
    # writing the global profile.
    serve(*(build(spec, timezone) for spec in read_specs()), print_starting_message=False)


if __name__ == "__main__":
    main()
