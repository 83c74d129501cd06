"""`kb up` as a user runs it (`python3 dev.py kb up`), against the real Prefect server it
starts: the runs its schedules create, Prefect's own CLI, runs started like the UI starts
them, kb commands from another shell, and a clean stop. One `kb up` serves the module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from prefect.deployments import run_deployment
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, temporary_settings

from creatorkb.ledger import Ledger
from tests.analysts import by_title, careful, fabricated
from tests.conftest import BIN, KB, REPO, free_port
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.servers.youtube import FakeYouTube

CHANNEL = "UCdeploydddddddddddddddd"
HYPE, CALM = "We wire ComfyUI to Flux.", "We add a LoRA for style."
pytestmark = pytest.mark.xdist_group("kb-up")  # one worker owns the module's kb up


@dataclass
class Served:
    """A project directory with `kb up` running in it, and the fakes it talks to."""

    project: Path
    api: str
    process: subprocess.Popen[bytes]
    log: Path
    youtube: FakeYouTube
    ollama: FakeOllama
    anthropic: FakeAnthropic
    env: dict[str, str]

    def kb(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """A kb command in another shell of the project (PREFECT_API_URL unset)."""
        done = subprocess.run(
            [KB, *args],
            cwd=self.project,
            env={**self.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == expect, f"kb {args}:\n{done.stdout}\n{done.stderr}"
        return done

    def prefect(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Prefect's own CLI pointed at kb's server."""
        done = subprocess.run(
            [str(BIN / "prefect"), *args],
            env={**self.env, "PREFECT_API_URL": self.api, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"prefect {args}:\n{done.stdout}\n{done.stderr}"
        return done


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


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    project = tmp_path_factory.mktemp("project")
    with (
        FakeYouTube() as youtube,
        FakeOllama(cold_load_s=0.0) as ollama,
        FakeAnthropic(min_cache_tokens=256) as anthropic,
    ):
        ollama.responder = by_title({"hype": fabricated})
        anthropic.responder = careful
        youtube.add_channel(CHANNEL, "Deployed")
        youtube.add_video(CHANNEL, title="hype reel", transcript_text=HYPE)
        youtube.add_video(CHANNEL, title="calm talk", transcript_text=CALM)
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PREFECT_", "KB_", "ANTHROPIC_", "OLLAMA_"))
        }
        env.update(youtube.proxy_env())
        env.update(
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            KB_POLICY_SHADOW_RATE="0",
            KB_POLICY_MIN_WEEKLY_SHADOWS="0",
            KB_POLICY_BATCH_PURPOSES="{}",
            KB_YOUTUBE_PAUSE_SECONDS="0",
            KB_COST_TIMEZONE="Europe/Berlin",
            OLLAMA_HOST=ollama.url,
            ANTHROPIC_BASE_URL=anthropic.url,
            ANTHROPIC_API_KEY=anthropic.api_key,
            PREFECT_RUNNER_POLL_FREQUENCY="1",  # served runs are picked up within a second
        )
        subprocess.run([KB, "init"], cwd=project, env=env, check=True, capture_output=True)
        subprocess.run(
            [KB, "creators", "add", CHANNEL, "--name", "Deployed"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
        port = free_port()
        log = project / "kb-up.log"
        with log.open("wb") as output:
            # Exactly as the README says, in a session of its own like a terminal's job.
            process = subprocess.Popen(
                ["python3", str(REPO / "dev.py"), "kb", "up", "--port", str(port)],
                cwd=project,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        api = f"http://127.0.0.1:{port}/api"
        served = Served(project, api, process, log, youtube, ollama, anthropic, env)
        try:
            expected = {d["name"] for d in _declared()}

            def ready() -> object:
                assert process.poll() is None, f"kb up exited:\n{log.read_text()}"
                return _served(api, expected)

            wait_for("every deployment to be served", ready)
            yield served
        finally:
            if process.poll() is None:  # a test failed before stopping it
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=60)


def _declared() -> list[dict[str, Any]]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]


def _served(api: str, expected: set[str]) -> dict[str, dict[str, Any]] | None:
    try:
        found = api_post(api, "deployments/filter", {"limit": 50, "offset": 0})
    except httpx.HTTPError:
        return None
    by_name = {d["name"]: d for d in found}
    return by_name if set(by_name) == expected else None


def ledger_rows(served: Served, sql: str) -> list[dict[str, Any]]:
    return Ledger(served.project / "data" / "kb.duckdb").rows(sql)


def test_the_server_creates_the_scheduled_runs(served: Served) -> None:
    deployments = _served(served.api, {d["name"] for d in _declared()})
    assert deployments is not None
    scheduled = [d["name"] for d in _declared() if d.get("schedules")]
    assert {"pipeline", "weekly-cost-report", "knowledge-digest"} <= set(scheduled)

    def upcoming() -> dict[str, list[dict[str, Any]]] | None:
        runs = {
            name: api_post(
                served.api,
                "flow_runs/filter",
                {
                    "deployments": {"id": {"any_": [deployments[name]["id"]]}},
                    "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                    "limit": 10,
                },
            )
            for name in scheduled
        }
        return runs if all(runs.values()) else None

    # What the UI's Upcoming tab lists: runs the server's scheduler created, in the future.
    runs = wait_for("the scheduler to create runs of every scheduled deployment", upcoming, 120)
    now = datetime.now(UTC)
    for name, found in runs.items():
        assert all(datetime.fromisoformat(run["expected_start_time"]) > now for run in found)
        assert {run["deployment_id"] for run in found} == {deployments[name]["id"]}
    # Mondays 08:00 in the configured timezone.
    report = datetime.fromisoformat(runs["weekly-cost-report"][0]["expected_start_time"])
    berlin = report.astimezone(ZoneInfo("Europe/Berlin"))
    assert (berlin.weekday(), berlin.hour, berlin.minute) == (0, 8, 0)
    digest = datetime.fromisoformat(runs["knowledge-digest"][0]["expected_start_time"])
    berlin = digest.astimezone(ZoneInfo("Europe/Berlin"))
    assert (berlin.weekday(), berlin.hour, berlin.minute) == (0, 8, 30)  # after the report


def test_prefect_cli_lists_and_runs_deployments_on_kb_up(served: Served) -> None:
    listing = served.prefect("deployment", "ls").stdout
    assert "pipeline/pipeline" in listing and "weekly-cost-report/weekly-cost-report" in listing
    served.prefect("flow-run", "ls")
    assert "Block" in served.prefect("block", "ls").stdout
    served.prefect("work-pool", "ls")

    week = f"{datetime.now(UTC):%G-W%V}"
    started = served.prefect(
        "deployment", "run", "weekly-cost-report/weekly-cost-report", "--param", f"week={week}"
    ).stdout
    run_id = next(line.split()[-1] for line in started.splitlines() if "UUID" in line)

    def finished() -> dict[str, Any] | None:
        run = httpx.get(f"{served.api}/flow_runs/{run_id}", timeout=30).json()
        return run if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED") else None

    # The served runner picks the run up and finishes it; the report lands in the project.
    run = wait_for("the served runner to finish the run", finished, 240)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert (served.project / "reports" / f"{week}.html").is_file()


def test_runs_started_like_the_ui_does(served: Served) -> None:
    by_name = _served(served.api, {d["name"] for d in _declared()})
    assert by_name is not None
    assert by_name["pipeline"]["global_concurrency_limit"]["limit"] == 1  # never overlap
    assert by_name["pipeline"]["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    form = by_name["pipeline"]["parameter_openapi_schema"]["properties"]
    assert form["fetch_limit"]["minimum"] == 1 and form["fetch_limit"]["type"] == "integer"

    with temporary_settings(updates={PREFECT_API_URL: served.api}):
        with pytest.raises(PrefectHTTPStatusError, match="0 is less than the minimum of 1"):
            run_deployment("pipeline/pipeline", parameters={"fetch_limit": 0}, timeout=0)
        pipeline_run = run_deployment("pipeline/pipeline", timeout=300, poll_interval=1)
    assert pipeline_run.state.is_completed(), pipeline_run.state
    # What the UI shows of that run: its own summary, and task runs named by video.
    [summary] = api_post(
        served.api,
        "artifacts/filter",
        {"flow_runs": {"id": {"any_": [str(pipeline_run.id)]}}, "limit": 5},
    )
    assert summary["key"] == "pipeline-summary" and "# Pipeline run" in summary["data"]
    assert "## Analysis summary" in summary["data"]
    tasks = api_post(served.api, "task_runs/filter", {"limit": 200})
    videos = [r["video_id"] for r in ledger_rows(served, "SELECT video_id FROM videos")]
    names = {task["name"] for task in tasks}
    assert {f"analyze-{video}" for video in videos} <= names
    assert {f"fetch-{video}" for video in videos} <= names
    # Every run form field says what it is; every block form says which name kb reads.
    for deployment in by_name.values():
        fields = deployment["parameter_openapi_schema"]["properties"]
        assert all(field.get("description") for field in fields.values()), deployment["name"]
    for slug in ("youtube-settings", "ollama-server", "anthropic-credentials", "routing-policy"):
        block_type = httpx.get(f"{served.api}/block_types/slug/{slug}", timeout=30).json()
        assert "saved under the name `default`" in block_type["description"]
    ledger = Ledger(served.project / "data" / "kb.duckdb")
    assert ledger.rows("SELECT DISTINCT status FROM videos") == [{"status": "analyzed"}]
    routes = sorted(r["route"] for r in ledger.rows("SELECT route FROM routing_decisions"))
    assert routes == ["cloud_refine", "local_accept"]


def test_kb_commands_in_the_project_use_kb_up(served: Served) -> None:
    before = datetime.now(UTC)
    done = served.kb("scan", "--force")
    assert f"the `kb up` server at {served.api.removesuffix('/api')}" in done.stderr
    runs = api_post(
        served.api,
        "flow_runs/filter",
        {"flow_runs": {"start_time": {"after_": before.isoformat()}}, "limit": 20},
    )
    flows = {f["id"]: f["name"] for f in api_post(served.api, "flows/filter", {"limit": 50})}
    assert "scan-creators" in {flows[run["flow_id"]] for run in runs}  # in the UI's run list
    doctor = served.kb("doctor").stdout
    assert "the `kb up` server at" in doctor

    second = served.kb("up", "--port", str(free_port()), expect=1).stdout
    assert "`kb up` already runs for this project" in second


def test_answers_are_read_back_from_deployment_runs(served: Served) -> None:
    """What an agent does: start the ask and route-prompt deployments through the API, then
    read each answer back from the run (its persisted result) and the UI's artifact."""
    question = "How do we add a LoRA for style?"
    with temporary_settings(updates={PREFECT_API_URL: served.api}):
        if not ledger_rows(served, "SELECT video_id FROM analyses"):  # run on its own
            assert run_deployment("pipeline/pipeline", timeout=300).state.is_completed()
        asked = run_deployment(
            "ask/ask", parameters={"question": question}, timeout=300, poll_interval=1
        )
        prompted = run_deployment(
            "route-prompt/route-prompt",
            parameters={"prompt": "Say hello.", "level": "L3"},
            timeout=300,
            poll_interval=1,
        )
        assert asked.state.is_completed(), asked.state
        assert prompted.state.is_completed(), prompted.state
        # Plain JSON: any Prefect client reads it, without kb installed.
        answer, reply = asked.state.result(), prompted.state.result()
    assert answer["kind"] == "ask" and answer["question"] == question
    calm = ledger_rows(served, "SELECT video_id FROM videos WHERE title = 'calm talk'")
    assert [c["video_id"] for c in answer["citations"]] == [calm[0]["video_id"]]
    assert "LoRA for style [1]" in answer["text"] and answer["route"] == "local_accept"
    assert reply["kind"] == "prompt" and reply["text"] and reply["route"] == "local_accept"
    stored = ledger_rows(served, "SELECT answer_id, kind, text FROM answers ORDER BY ts")
    assert {(r["answer_id"], r["text"]) for r in stored} >= {
        (answer["answer_id"], answer["text"]),
        (reply["answer_id"], reply["text"]),
    }
    shown = {}
    for run, key in ((asked, "ask-answer"), (prompted, "prompt-answer")):
        [artifact] = api_post(
            served.api,
            "artifacts/filter",
            {"flow_runs": {"id": {"any_": [str(run.id)]}}, "artifacts": {"key": {"any_": [key]}}},
        )
        shown[key] = artifact["data"]
    assert "## Sources" in shown["ask-answer"] and calm[0]["video_id"] in shown["ask-answer"]
    assert reply["text"] in shown["prompt-answer"]


def test_kb_up_says_how_to_reach_it_and_stops_cleanly(served: Served) -> None:
    record = json.loads((served.project / ".prefect" / "kb-up.json").read_text())
    assert record["api_url"] == served.api

    children = subprocess.run(["pgrep", "-P", str(served.process.pid)], capture_output=True)
    pids = [int(pid) for pid in children.stdout.split()]
    assert len(pids) == 2  # the Prefect server and the deployment runner

    started = time.monotonic()
    os.killpg(served.process.pid, signal.SIGINT)  # Ctrl-C in the terminal
    assert served.process.wait(timeout=30) == 0
    stop_s = time.monotonic() - started
    output = served.log.read_text()
    assert stop_s < 10, f"kb up took {stop_s:.1f} s to stop:\n{output}"
    assert f"export PREFECT_API_URL={served.api}" in output
    assert "prefect config set" not in output  # never the global profile
    assert "never awaited" not in output and "Traceback" not in output
    assert not (served.project / ".prefect" / "kb-up.json").exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # Nothing left the machine but requests to YouTube: no telemetry through the proxy.
    assert set(served.youtube.proxy_connects) <= {"www.youtube.com:443"}
