"""Scale-out benchmark: videos analysed by one worker on one Ollama host against two workers
on two Ollama hosts, through the real parts: PostgreSQL, a Prefect server on it, `kb worker`
processes of one process work pool, one DuckLake ledger, loopback Ollama hosts with fixed
latency whose slots are Prefect global concurrency limits.

    .venv/bin/python bench/scale.py [--videos 40] [--latency 2.0] [--parallel 2]

Prints the throughput of each setup (videos per minute over the span of the local calls, and
over the flow runs' Running time), how busy the machine's CPUs were meanwhile (every part
runs on this one machine: near 100%, the machine sets the pace), the speedup, and the most
requests each host served at once (never more than its slots). Goal: two hosts >= 1.8x one
host.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for the loopback fakes and helpers in tests/

from creatorkb.ledger import Ledger  # noqa: E402
from tests.analysts import careful  # noqa: E402
from tests.conftest import KB, PrefectServer, seed_transcribed  # noqa: E402
from tests.postgres import Postgres  # noqa: E402
from tests.servers.ollama import FakeOllama  # noqa: E402
from tests.workers import Cluster, start_worker, stop  # noqa: E402

MEDIUM = "UCmediummmmmmmmmmmmmmmmm"
TALK = (
    "Today we build a portrait workflow in ComfyUI. First load the Flux model and set the "
    "sampler to twenty steps. Then add a LoRA for the painterly style. Finally upscale."
)


@dataclass(frozen=True)
class Result:
    workers: int
    hosts: int
    videos: int
    calls_s: float  # first local call's start to last call's end
    running_s: float  # first flow run Running to last one ending
    peaks: list[int]  # most requests each host served at once
    busy: float  # share of the machine's CPU time in use while the runs ran (0-1)
    windows: list[tuple[float, float]]  # each run's first call start and last end, from 0

    def per_minute(self, seconds: float) -> float:
        return self.videos / seconds * 60


def scenario(
    cluster: Cluster,
    postgres: Postgres,
    directory: Path,
    *,
    workers: int,
    hosts: int,
    videos: int,
    latency: float,
    parallel: int,
) -> Result:
    name = f"bench_{workers}w{hosts}h_{int(time.time())}"
    url = "ducklake:postgres:" + postgres.create_database(name)
    data = directory / name
    os.environ["KB_LEDGER_DATA_PATH"] = str(data) + "/"
    rows = [(f"{name[:12]}{i:06d}", MEDIUM, f"calm {i}", TALK) for i in range(videos)]
    seed_transcribed(url, rows, {MEDIUM: "medium"})  # type: ignore[arg-type]
    servers = [FakeOllama(cold_load_s=0.0, latency_s=latency).start() for _ in range(hosts)]
    started = [
        start_worker(cluster.env, cluster.pool, f"bench{k}", directory / f"{name}-w{k}.log")
        for k in range(workers)
    ]
    try:
        for server in servers:
            server.responder = careful
        env = {
            "KB_LEDGER": url,
            "KB_LEDGER_DATA_PATH": str(data) + "/",
            "KB_OLLAMA_HOSTS": ",".join(server.url for server in servers),
            "KB_OLLAMA_PARALLEL": str(parallel),
        }
        share = -(-videos // workers)
        cpu_before = _cpu_times()
        runs = [
            cluster.run_deployment("analyze-videos", "analyze-videos", env, limit=share)
            for _ in range(workers)
        ]
        ended = cluster.wait_finished(runs, timeout=900)
        busy = _busy_share(cpu_before, _cpu_times())
        assert all(run["state_type"] == "COMPLETED" for run in ended), ended
        spans = [span for run in runs for span in cluster.running_intervals(run)]
        running = max(_ts(end) for _, end in spans) - min(_ts(start) for start, _ in spans)
        [calls] = Ledger(url).rows(
            "SELECT count(*) AS n, epoch(max(ts)) - epoch(min(ts)) AS span, "
            "max(latency_ms) AS latency FROM llm_calls WHERE provider = 'ollama'"
        )
        assert calls["n"] == videos, calls
        # When each run's local calls began and ended: a run that starts late or ends late
        # leaves the other's slots idle (the runs each claimed their share up front).
        windows = Ledger(url).rows(
            "SELECT epoch(min(ts)) - ? AS first, epoch(max(ts)) AS last FROM llm_calls "
            "WHERE provider = 'ollama' GROUP BY flow_run_id ORDER BY first",
            [latency],
        )
        origin = min(float(w["first"]) for w in windows)
        analysed = Ledger(url).rows("SELECT count(*) AS n FROM analyses")[0]["n"]
        assert analysed == videos
        # ts is when a call was recorded (its end): add the first call's own latency.
        calls_s = float(calls["span"]) + latency
        return Result(
            workers,
            hosts,
            videos,
            calls_s,
            running.total_seconds(),
            [server.max_concurrency for server in servers],
            busy,
            [(float(w["first"]) - origin, float(w["last"]) - origin) for w in windows],
        )
    finally:
        for process in started:
            stop(process)
        for server in servers:
            server.stop()


def _cpu_times() -> tuple[int, int]:
    """The machine's (busy, all) CPU time so far, in clock ticks (/proc/stat)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def _busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How much of every core was in use between two readings: near 1, the machine (every
    process on it: workers, Prefect, PostgreSQL, the fake hosts) sets the pace, not the design."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="kb-bench-scale-"))
    with Postgres() as postgres:
        postgres.create_database("prefect")
        server = PrefectServer(directory, postgres.url("prefect"))
        try:
            env = {
                **os.environ,
                "PREFECT_API_URL": server.url,
                "PREFECT_HOME": str(directory / ".prefect"),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "KB_CREATORS": str(directory / "creators.yaml"),
                "KB_POLICY_SHADOW_RATE": "0",
                "KB_POLICY_BATCH_PURPOSES": "{}",  # refines answered at once: throughput
                "KB_POLICY_MIN_WEEKLY_SHADOWS": "0",
                "NO_PROXY": "127.0.0.1,localhost",
            }
            for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OLLAMA_HOST"):
                env.pop(name, None)
            (directory / "creators.yaml").write_text("creators: []\n")
            subprocess.run([KB, "deploy", "--pool", "bench"], env=env, check=True, cwd=directory)
            cluster = Cluster(server, "bench", env, [])
            results = [
                scenario(
                    cluster,
                    postgres,
                    directory,
                    workers=n,
                    hosts=n,
                    videos=args.videos,
                    latency=args.latency,
                    parallel=args.parallel,
                )
                for n in (1, 2)
            ]
        finally:
            server.stop()
    ideal = args.videos * args.latency / args.parallel
    print(f"{args.videos} videos, local latency {args.latency:g} s, {args.parallel} slots per host")
    print(
        f"{'setup':<22}{'calls span':>12}{'videos/min':>12}{'running':>10}{'videos/min':>12}"
        f"{'CPU busy':>10}  peaks"
    )
    for r in results:
        print(
            f"{r.workers} worker(s), {r.hosts} host(s){'':<3}{r.calls_s:>10.1f} s"
            f"{r.per_minute(r.calls_s):>12.1f}{r.running_s:>8.1f} s"
            f"{r.per_minute(r.running_s):>12.1f}{r.busy:>9.0%}  {r.peaks} (slots {args.parallel})"
        )
        windows = ", ".join(f"{first:.1f}-{last:.1f} s" for first, last in r.windows)
        print(f"{'':<4}each run's local calls: {windows}")
    one, two = results
    print(
        f"ideal one host: {ideal:.1f} s; speedup, calls span: {one.calls_s / two.calls_s:.2f}x; "
        f"running span: {one.running_s / two.running_s:.2f}x (goal >= 1.8x)"
    )


if __name__ == "__main__":
    main()
