"""Orchestration benchmark: 200 videos through tiered analysis against loopback model servers
with fixed latency (local 0.5 s with 4 parallel slots; cloud 1 s with 8 slots).

    .venv/bin/python bench/orchestration.py [--videos 200] [--skip-sequential]

Prints the wall time of the analyze-videos flow against the ideal bound (every local and
cloud slot busy all the time) and against a one-at-a-time loop. Target: >= 90% of ideal.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for the loopback fakes in tests/servers

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from tests.analysts import by_title, fabricated  # noqa: E402
from tests.conftest import seed_transcribed  # noqa: E402
from tests.servers.anthropic import FakeAnthropic  # noqa: E402
from tests.servers.ollama import FakeOllama  # noqa: E402

LOCAL_S, LOCAL_SLOTS, CLOUD_S, CLOUD_SLOTS = 0.5, 4, 1.0, 8
TALK = (
    "Today we build a portrait workflow in ComfyUI. First load the Flux model and set the "
    "sampler to twenty steps. Then add a LoRA for the painterly style. Finally upscale."
)
MEDIUM, CRITICAL = "UCmediummmmmmmmmmmmmmmmm", "UCcriticalccccccccccccccc"


def seed(ledger: Path, videos: int) -> tuple[int, int]:
    """Half accepted locally, a quarter refined in the cloud, a quarter cloud-direct."""
    rows = []
    for i in range(videos):
        kind = ("calm", "calm", "hype", "critical")[i % 4]
        channel = CRITICAL if kind == "critical" else MEDIUM
        rows.append((f"vid{i:08d}", channel, f"{kind} {i}", TALK))
    seed_transcribed(ledger, rows, {MEDIUM: "medium", CRITICAL: "critical"})
    local_calls = sum(1 for _, _, title, _ in rows if not title.startswith("critical"))
    cloud_calls = sum(1 for _, _, title, _ in rows if not title.startswith("calm"))
    return local_calls, cloud_calls


def environment(directory: Path, ollama: FakeOllama, anthropic: FakeAnthropic) -> None:
    os.environ.update(
        {
            "KB_LEDGER": str(directory / "kb.duckdb"),
            "OLLAMA_HOST": ollama.url,
            "ANTHROPIC_BASE_URL": anthropic.url,
            "ANTHROPIC_API_KEY": anthropic.api_key,
            "KB_OLLAMA_PARALLEL": str(LOCAL_SLOTS),
            "KB_ANTHROPIC_CONCURRENCY": str(CLOUD_SLOTS),
            "KB_POLICY_SHADOW_RATE": "0",
            "KB_POLICY_BATCH_PURPOSES": "{}",  # refines answered at once: wall time
            "KB_POLICY_MIN_WEEKLY_SHADOWS": "0",
            "KB_POLICY_WEEKLY_BUDGET_USD": "1000",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )


def run(videos: int, sequential: bool) -> None:
    with (
        tempfile.TemporaryDirectory() as directory,
        FakeOllama(latency_s=LOCAL_S, parallel=LOCAL_SLOTS, cold_load_s=0) as ollama,
        FakeAnthropic(latency_s=CLOUD_S, parallel=CLOUD_SLOTS, min_cache_tokens=256) as anthropic,
        prefect_test_harness(),
    ):
        ollama.responder = anthropic.responder = by_title({"hype": fabricated})
        anthropic.responder = by_title({})
        environment(Path(directory), ollama, anthropic)
        local_calls, cloud_calls = seed(Path(directory) / "kb.duckdb", videos)
        ideal = max(local_calls * LOCAL_S / LOCAL_SLOTS, cloud_calls * CLOUD_S / CLOUD_SLOTS)
        one_at_a_time = local_calls * LOCAL_S + cloud_calls * CLOUD_S

        from flows.analyze import analyze_videos

        started = time.perf_counter()
        started_mono = time.monotonic()
        summary = analyze_videos(limit=videos)
        wall = time.perf_counter() - started
        print(f"videos: {summary.videos} ({summary.routes})")
        print(
            f"model calls: {local_calls} local x {LOCAL_S} s on {LOCAL_SLOTS} slots, "
            f"{cloud_calls} cloud x {CLOUD_S} s on {CLOUD_SLOTS} slots"
        )
        print(f"ideal bound (every slot busy): {ideal:.1f} s")
        print(f"analyze-videos flow: {wall:.1f} s = {100 * ideal / wall:.0f}% of ideal")
        print(
            f"peak concurrency seen: local {ollama.max_concurrency}, cloud "
            f"{anthropic.max_concurrency}"
        )
        for name, fake, latency, slots in (
            ("local", ollama, LOCAL_S, LOCAL_SLOTS),
            ("cloud", anthropic, CLOUD_S, CLOUD_SLOTS),
        ):
            calls = [r for r in fake.requests if r.path in ("/api/chat", "/v1/messages")]
            first = min(r.received_at for r in calls) - started_mono
            last = max(r.answered_at for r in calls) - started_mono
            # Each answer takes its latency plus the fake's own work (parsing, counting
            # tokens, building JSON) on this machine's two cores.
            service = sum(r.answered_at - r.received_at for r in calls) / len(calls)
            busy = len(calls) * service / (slots * (last - first))
            print(
                f"{name}: {len(calls)} calls, first sent {first:.1f} s into the run, last "
                f"answered at {last:.1f} s; mean time in the server {service:.3f} s "
                f"(nominal {latency} s); slots busy {100 * busy:.0f}% between the first and "
                "the last call"
            )
        if sequential:
            loop = one_at_a_time_loop(Path(directory), videos)
            print(
                f"one-at-a-time loop: {loop:.1f} s (sum of latencies {one_at_a_time:.1f} s); "
                f"the flow is {loop / wall:.1f}x faster"
            )
        print(f"target >= 90% of ideal: {'met' if ideal / wall >= 0.9 else 'MISSED'}")


def one_at_a_time_loop(directory: Path, videos: int) -> float:
    """The same videos analysed again one after another, with no Prefect and no overlap."""
    from creatorkb.analysis import analyze_video, claim_videos
    from creatorkb.budget import Budget
    from creatorkb.cloud_model import CloudModel
    from creatorkb.engine import RoutingEngine
    from creatorkb.ledger import Ledger
    from creatorkb.local_model import LocalModel
    from creatorkb.routing import RoutingPolicyEnvSettings
    from creatorkb.settings import AnthropicEnvSettings, CostOptions, OllamaEnvSettings
    from creatorkb.spending import BudgetedCloud

    ledger = Ledger(directory / "sequential.duckdb")
    seed(ledger.path, videos)
    policy = RoutingPolicyEnvSettings()
    engine = RoutingEngine(
        ledger=ledger,
        policy=policy,
        costs=CostOptions(),
        local=LocalModel(OllamaEnvSettings()),
        draft_model="llama3.2",
        cloud=BudgetedCloud(
            CloudModel(AnthropicEnvSettings()), Budget(ledger, policy.weekly_budget_usd), None
        ),
    )
    started = time.perf_counter()
    for job in claim_videos(ledger, limit=videos, flow_run_id=None):
        analyze_video(engine, job)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--skip-sequential", action="store_true")
    args = parser.parse_args()
    run(args.videos, not args.skip_sequential)


if __name__ == "__main__":
    main()
