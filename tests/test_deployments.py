"""`kb up` end to end: a real Prefect server, every deployment served, runs started the way
the UI starts them (`run_deployment`), results checked through the API and in DuckDB."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect.deployments import run_deployment
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, temporary_settings

from creatorkb.ledger import Ledger
from tests.analysts import by_title, fabricated
from tests.conftest import KB, REPO, free_port
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.servers.youtube import FakeYouTube

CHANNEL = "UCdeploydddddddddddddddd"


def api_post(api: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{api}/{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def wait_for(what: str, check: Any, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_kb_up_serves_every_flow_on_schedule_and_runs_them_like_the_ui(
    kb_env: Path,
    youtube: FakeYouTube,
    ollama: FakeOllama,
    anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    youtube.add_channel(CHANNEL, "Deployed")
    youtube.add_video(CHANNEL, title="hype reel", transcript_text="We wire ComfyUI to Flux.")
    youtube.add_video(CHANNEL, title="calm talk", transcript_text="We add a LoRA for style.")
    subprocess.run([KB, "init"], check=True, capture_output=True)
    subprocess.run([KB, "creators", "add", CHANNEL, "--name", "Deployed"], check=True)
    monkeypatch.setenv("KB_COST_TIMEZONE", "Europe/Berlin")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # kb up brings its own server
    monkeypatch.setenv("PREFECT_RUNNER_POLL_FREQUENCY", "1")  # pick runs up within a second
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = (kb_env / "kb-up.log").open("wb")
    up = subprocess.Popen([KB, "up", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        expected = {
            d["name"] for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
        }
        deployments = wait_for(
            "every deployment to be served",
            lambda: _served(api, expected),
        )
        assert (kb_env / ".prefect").is_dir()  # a project-local PREFECT_HOME
        by_name = {d["name"]: d for d in deployments}
        [pipeline_schedule] = by_name["pipeline"]["schedules"]
        assert pipeline_schedule["schedule"]["interval"] == 21600
        assert by_name["pipeline"]["global_concurrency_limit"]["limit"] == 1  # never overlap
        assert by_name["pipeline"]["concurrency_options"]["collision_strategy"] == "ENQUEUE"
        [report_schedule] = by_name["weekly-cost-report"]["schedules"]
        assert report_schedule["schedule"]["cron"] == "0 8 * * 1"
        [digest_schedule] = by_name["knowledge-digest"]["schedules"]
        assert digest_schedule["schedule"]["cron"] == "30 8 * * 1"  # after the cost report
        assert report_schedule["schedule"]["timezone"] == "Europe/Berlin"
        form = by_name["pipeline"]["parameter_openapi_schema"]["properties"]
        assert form["fetch_limit"]["minimum"] == 1 and form["fetch_limit"]["type"] == "integer"

        with temporary_settings(updates={PREFECT_API_URL: api}):
            with pytest.raises(PrefectHTTPStatusError, match="0 is less than the minimum of 1"):
                run_deployment("pipeline/pipeline", parameters={"fetch_limit": 0}, timeout=0)
            pipeline_run = run_deployment("pipeline/pipeline", timeout=300, poll_interval=1)
            week = f"{datetime.now(UTC):%G-W%V}"
            report_run = run_deployment(
                "weekly-cost-report/weekly-cost-report",
                parameters={"week": week},
                timeout=300,
                poll_interval=1,
            )
        assert pipeline_run.state.is_completed(), pipeline_run.state
        assert report_run.state.is_completed(), report_run.state

        runs = api_post(api, "flow_runs/filter", {"limit": 50, "offset": 0})
        names = {run["name"] for run in runs if run["state_type"] == "COMPLETED"}
        assert pipeline_run.name in names and report_run.name in names
        artifacts = api_post(
            api,
            "artifacts/filter",
            {"artifacts": {"key": {"any_": ["weekly-cost-report"]}}, "limit": 5, "offset": 0},
        )
        assert artifacts and week in artifacts[0]["data"]
        summaries = api_post(
            api,
            "artifacts/filter",
            {"artifacts": {"key": {"any_": ["analysis-summary"]}}, "limit": 5, "offset": 0},
        )
        assert summaries
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        log.close()

    ledger = Ledger(kb_env / "data" / "kb.duckdb")
    assert ledger.rows("SELECT DISTINCT status FROM videos") == [{"status": "analyzed"}]
    routes = sorted(r["route"] for r in ledger.rows("SELECT route FROM routing_decisions"))
    assert routes == ["cloud_refine", "local_accept"]
    assert ledger.rows("SELECT week FROM weekly_reports") == [{"week": week}]
    assert (kb_env / "reports" / f"{week}.html").is_file()


def _served(api: str, expected: set[str]) -> list[dict[str, Any]] | None:
    try:
        found = api_post(api, "deployments/filter", {"limit": 50, "offset": 0})
    except httpx.HTTPError:
        return None
    return found if {d["name"] for d in found} == expected else None
