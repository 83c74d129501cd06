"""Scaled out: a Prefect server on PostgreSQL, a process work pool, workers as separate
processes (`kb worker`), loopback Ollama hosts shared by every process.

One module, one xdist group: the session's PostgreSQL and its Prefect server start once, on
one test worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.analysts import by_title, careful, fabricated
from tests.conftest import KB, PrefectServer, run_kb, seed_transcribed
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.workers import Cluster, start_worker, stop

pytestmark = pytest.mark.xdist_group("scale")

TALK = (
    "Today we build a portrait workflow in ComfyUI. First load the Flux model and set the "
    "sampler to twenty steps. Then add a LoRA for the painterly style. Finally upscale."
)
MEDIUM = "UCmediummmmmmmmmmmmmmmmm"


@pytest.fixture(scope="module")
def cluster(
    prefect_on_postgres: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """`kb deploy --pool` on the PostgreSQL-backed server and two `kb worker`s, each a process
    of its own, sharing one project directory (as machines share a checkout)."""
    project = tmp_path_factory.mktemp("scale-project")
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_on_postgres.url,
        "PREFECT_HOME": str(project / ".prefect"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "KB_LEDGER": str(project / "data" / "kb.duckdb"),
        "KB_CREATORS": str(project / "creators.yaml"),
        "KB_LEDGER_WAIT_SECONDS": "30",
        "KB_POLICY_SHADOW_RATE": "0",
        "KB_POLICY_MIN_WEEKLY_SHADOWS": "0",
        # Refines answered at once (tests/test_batches.py covers work that waits for a batch).
        "KB_POLICY_BATCH_PURPOSES": "{}",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OLLAMA_HOST", "HTTPS_PROXY"):
        env.pop(name, None)
    (project / "creators.yaml").write_text("creators: []\n")
    pool = "kb-scale"
    done = subprocess.run(
        [KB, "deploy", "--pool", pool],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deployed  pipeline" in done.stdout
    workers = [start_worker(env, pool, f"w{n}", project / f"worker{n}.log") for n in (1, 2)]
    yield Cluster(prefect_on_postgres, pool, env, workers)
    for process in workers:
        stop(process)


def test_prefect_runs_on_postgres(prefect_on_postgres: PrefectServer) -> None:
    """The server's database is PostgreSQL, not its SQLite."""
    health = httpx.get(f"{prefect_on_postgres.url}/admin/version", timeout=10)
    assert health.status_code == 200
    assert not list(prefect_on_postgres.home.glob("*.db"))


def test_pipeline_limit_of_one_holds_across_workers(cluster: Cluster) -> None:
    """Two pipeline runs asked for at once, two workers free: they run one after the other."""
    videos = [(f"lim{i:08d}", MEDIUM, f"calm {i}", TALK) for i in range(6)]
    seed_transcribed(Path(cluster.env["KB_LEDGER"]), videos, {MEDIUM: "medium"})
    with FakeOllama(cold_load_s=0.0, latency_s=0.5, parallel=2) as ollama:
        ollama.responder = careful
        env = {"OLLAMA_HOST": ollama.url}
        first = cluster.run_deployment("pipeline", "pipeline", env, analyze_limit=3)
        second = cluster.run_deployment("pipeline", "pipeline", env, analyze_limit=3)
        runs = cluster.wait_finished([first, second])
    assert [run["state_type"] for run in runs] == ["COMPLETED", "COMPLETED"], runs
    (a,), (b,) = cluster.running_intervals(first), cluster.running_intervals(second)
    assert a[1] <= b[0] or b[1] <= a[0], f"pipeline runs overlapped: {a} and {b}"


def test_kb_worker_needs_a_long_lived_server(kb_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(kb_env / ".prefect"))
    done = run_kb("worker", "--pool", "kb", expect=1)
    assert "long-lived Prefect server" in done.stdout


def test_ollama_slots_are_shared_by_every_process(cluster: Cluster, tmp_path: Path) -> None:
    """Two `kb analyze` processes at once, two Ollama hosts of 2 slots each: every local call
    holds a slot of the Prefect server's limit for its host, so no host ever serves more than
    2 requests at once (each process alone would send 2 per host), and both hosts work."""
    ledger = tmp_path / "kb.duckdb"
    videos = [(f"slot{i:08d}", MEDIUM, f"calm {i}", TALK) for i in range(16)]
    seed_transcribed(ledger, videos, {MEDIUM: "medium"})
    with (
        FakeOllama(cold_load_s=0.0, latency_s=1.0) as first,
        FakeOllama(cold_load_s=0.0, latency_s=1.0) as second,
    ):
        first.responder = second.responder = careful
        # The first process's first requests are held long enough for the second process to
        # start (10-20 s here under load) and want the same slots.
        first.stall_next(2, 12.0)
        second.stall_next(2, 12.0)
        env = {
            **cluster.env,
            "KB_LEDGER": str(ledger),
            "KB_OLLAMA_HOSTS": f"{first.url},{second.url}",
            "KB_OLLAMA_PARALLEL": "2",
        }
        commands = [
            subprocess.Popen(
                [KB, "analyze", "--limit", "8"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [command.communicate(timeout=300)[0] for command in commands]
    assert [command.returncode for command in commands] == [0, 0], outputs
    assert first.max_concurrency <= 2 and second.max_concurrency <= 2
    assert first.chat_counts and second.chat_counts  # both hosts answered
    from creatorkb.ledger import Ledger

    calls = Ledger(ledger).rows(
        "SELECT flow_run_id, ts, latency_ms FROM llm_calls WHERE provider = 'ollama'"
    )
    assert len(calls) == 16  # each video drafted once, by one of the two processes
    runs = {call["flow_run_id"] for call in calls}
    assert len(runs) == 2
    # Each process's flow run was running while the other still drafted: both wanted the
    # slots at once (one may have waited for all of them: its calls need not interleave with
    # the other's), so the limits, not luck, kept each host at 2.
    spans = {
        run: (
            datetime.fromisoformat(str(cluster.flow_run(run)["start_time"])),
            max(c["ts"] for c in calls if c["flow_run_id"] == run),
        )
        for run in runs
    }
    (a_start, a_end), (b_start, b_end) = spans.values()
    assert a_start < b_end and b_start < a_end, spans
    assert first.max_concurrency + second.max_concurrency == 4  # every slot was used


def test_two_workers_two_hosts_one_lake_and_a_worker_killed_mid_run(
    cluster: Cluster, lake_url: str, tmp_path: Path
) -> None:
    """The whole scaled-out setup: a pipeline run and an analysis run at once on two workers
    (separate processes), two Ollama hosts shared through the server's limits, one DuckLake
    ledger. One worker is killed mid-run (with its flow run); a new run on the other worker
    finishes everything: each video decided once, no finished video asked again or paid
    twice, the budget holding, nothing lost."""
    from creatorkb.ledger import Ledger

    titles = {f"e2e{i:08d}": f"{'hype' if i % 3 == 0 else 'calm'} {i}" for i in range(24)}
    seed_transcribed(
        lake_url,  # type: ignore[arg-type]
        [(video, MEDIUM, title, TALK) for video, title in titles.items()],
        {MEDIUM: "medium"},
    )
    ledger = Ledger(lake_url)
    with (
        FakeOllama(cold_load_s=0.0, latency_s=1.2) as first,
        FakeOllama(cold_load_s=0.0, latency_s=1.2) as second,
        FakeAnthropic(min_cache_tokens=256) as anthropic,
    ):
        first.responder = second.responder = by_title({"hype": fabricated})  # hype: refined
        anthropic.responder = careful
        anthropic.latency_s = 0.3
        env = {
            "KB_LEDGER": lake_url,
            "KB_LEDGER_DATA_PATH": os.environ["KB_LEDGER_DATA_PATH"],
            "KB_OLLAMA_HOSTS": f"{first.url},{second.url}",
            "KB_OLLAMA_PARALLEL": "2",
            "ANTHROPIC_BASE_URL": anthropic.url,
            "ANTHROPIC_API_KEY": anthropic.api_key,
            "KB_POLICY_WEEKLY_BUDGET_USD": "5",
            "KB_POLICY_BATCH_PURPOSES": "{}",  # refines at once: every video decided here
        }
        runs = [
            cluster.run_deployment("pipeline", "pipeline", env, analyze_limit=12),
            cluster.run_deployment("analyze-videos", "analyze-videos", env, limit=12),
        ]
        deadline = time.monotonic() + 240
        while True:  # a run in full flight on a worker, some videos finished, many to go
            [done] = ledger.rows("SELECT count(*) AS n FROM analyses")
            running = [run for run in runs if cluster.flow_run(run)["state_type"] == "RUNNING"]
            target = _worker_running(cluster, running) if 3 <= done["n"] <= 18 else None
            if target is not None:
                break
            assert time.monotonic() < deadline, done
            assert done["n"] <= 18, "the runs finished before a worker could be killed"
            time.sleep(0.2)
        victim_index, killed_run = target
        victim = cluster.workers[victim_index]
        os.killpg(victim.pid, signal.SIGKILL)  # the machine dies: worker and its flow run
        victim.wait()
        killed = [killed_run]
        # The killed run never ends by itself: the server marks it crashed (as Prefect's
        # zombie flow run automation does when its heartbeats stop).
        cluster.api(
            "POST",
            f"/flow_runs/{killed_run}/set_state",
            json={"state": {"type": "CRASHED", "name": "Crashed"}, "force": True},
        )
        finished = {r["video_id"] for r in ledger.rows("SELECT video_id FROM analyses")}
        asked_before = len(anthropic.calls)
        rest = cluster.run_deployment("analyze-videos", "analyze-videos", env, limit=100)
        survivor = [run for run in runs if run not in killed]
        ended = cluster.wait_finished([*survivor, rest], timeout=300)
        cluster.workers[victim_index] = start_worker(
            cluster.env, cluster.pool, "w-restarted", tmp_path / "worker-restarted.log"
        )

    assert [run["state_type"] for run in ended] == ["COMPLETED", "COMPLETED"]
    assert 0 < len(finished) < len(titles)
    decided = ledger.rows("SELECT video_id, count(*) AS n FROM analyses GROUP BY 1")
    assert {row["video_id"] for row in decided} == set(titles)  # nothing lost
    assert {row["n"] for row in decided} == {1}  # each decided once
    decisions = ledger.rows(
        "SELECT video_id, count(*) AS n FROM routing_decisions GROUP BY 1 HAVING count(*) > 1"
    )
    assert decisions == []
    asked_again = [call.user for call in anthropic.calls[asked_before:]]
    for video in finished:  # a finished video is never asked (or paid for) again
        assert not any(f"Video title: {titles[video]}\n" in user for user in asked_again)
    paid = ledger.rows(
        "SELECT video_id, count(*) AS n FROM llm_calls WHERE provider = 'anthropic' "
        "AND status = 'ok' GROUP BY 1"
    )
    assert all(row["n"] == 1 for row in paid if row["video_id"] in finished)
    [budget] = ledger.rows(
        "SELECT coalesce(sum(amount_usd), 0) AS usd FROM budget_reservations WHERE status = 'open'"
    )
    [spent] = ledger.rows(
        "SELECT coalesce(sum(cost_usd), 0) AS usd FROM llm_calls WHERE provider = 'anthropic'"
    )
    assert spent["usd"] + budget["usd"] <= 5
    assert ledger.rows("SELECT DISTINCT status FROM videos") == [{"status": "analyzed"}]
    assert first.max_concurrency <= 2 and second.max_concurrency <= 2  # slots shared
    assert first.chat_counts and second.chat_counts


def _worker_running(cluster: Cluster, runs: list[str]) -> tuple[int, str] | None:
    """A worker (its index) whose flow run process runs one of `runs`, and that run."""
    for index, worker in enumerate(cluster.workers):
        inside = _descendants(worker.pid)
        for run in runs:
            pid = str(cluster.flow_run(run).get("infrastructure_pid") or "").rpartition(":")[2]
            if pid.isdigit() and int(pid) in inside:
                return index, run
    return None


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found
