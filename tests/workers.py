"""Workers of a process work pool, and the Prefect server's REST API, for the scale-out tests
and bench/scale.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import KB, PrefectServer

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Cluster:
    """A Prefect server on PostgreSQL with a work pool and two workers (separate processes)."""

    server: PrefectServer
    pool: str
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]]

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = httpx.request(method, f"{self.server.url}{path}", timeout=30, **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        return response

    def deployment_id(self, flow: str, name: str) -> str:
        return str(self.api("GET", f"/deployments/name/{flow}/{name}").json()["id"])

    def run_deployment(
        self, flow: str, name: str, env: dict[str, str] | None = None, **parameters: object
    ) -> str:
        """A flow run of the deployment (`env`: more environment for its process)."""
        deployment = self.deployment_id(flow, name)
        body = {"parameters": parameters, "job_variables": {"env": env or {}}}
        created = self.api("POST", f"/deployments/{deployment}/create_flow_run", json=body)
        return str(created.json()["id"])

    def flow_run(self, run_id: str) -> dict[str, object]:
        return dict(self.api("GET", f"/flow_runs/{run_id}").json())

    def wait_finished(self, run_ids: list[str], timeout: float = 180) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout
        while True:
            runs = [self.flow_run(run_id) for run_id in run_ids]
            if all(run["state_type"] in TERMINAL for run in runs):
                return runs
            if time.monotonic() > deadline:
                states = [(run["name"], run["state_type"]) for run in runs]
                raise AssertionError(f"flow runs not finished in {timeout}s: {states}")
            time.sleep(0.5)

    def running_intervals(self, run_id: str) -> list[tuple[str, str]]:
        """When the run was in Running state: (start, end) of each stay."""
        states = self.api("GET", "/flow_run_states/", params={"flow_run_id": run_id}).json()
        states.sort(key=lambda state: state["timestamp"])
        spans, began = [], None
        for state in states:
            if state["type"] == "RUNNING":
                began = state["timestamp"]
            elif began is not None:
                spans.append((began, state["timestamp"]))
                began = None
        return spans


def start_worker(env: dict[str, str], pool: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [KB, "worker", "--pool", pool, "--name", name, "--limit", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
