"""Cost benchmark: a few hundred videos at the owner's token profile through the real flows
(analyze-videos on a temporary Prefect server, the official clients, loopback Ollama and
Anthropic servers), under four routings, against all-cloud on the reference model.

    .venv/bin/python bench/cost.py [--videos 200]

The profile: transcripts of about 10,000 tokens, records of about 4,000; 80% of local drafts
pass the confidence check (the other 20% are ungrounded and go to the cloud); of those, a
quarter get a record from claude-haiku-5-5 that still falls short (so the cascade goes on to
claude-sonnet-5); 5% of local accepts are shadow-reviewed (the policy's default shadow_rate).
Every video starts locally (medium priority, as the owner's plan has most work).

Routings: today's (refines on claude-sonnet-5, answered at once), with batches (refines and
shadows wait for a Message Batch at half price), with the cascade (refines go to
claude-haiku-5-5 first), with both. All-cloud is measured too: the same videos sent directly
to the reference model (claude-sonnet-5) through the same flow. Prints, per analysed video,
cloud dollars and local energy dollars, and each as a share of all-cloud.
Goal: both together at or below 5% of all-cloud.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for the loopback fakes in tests/servers
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from creatorkb.ledger import Ledger  # noqa: E402
from flows.analyze import analyze_videos  # noqa: E402
from tests.analysts import fabricated, transcript_in  # noqa: E402
from tests.conftest import seed_transcribed  # noqa: E402
from tests.servers.anthropic import FakeAnthropic  # noqa: E402
from tests.servers.ollama import FakeOllama  # noqa: E402
from tests.servers.tokens import count_tokens  # noqa: E402

MEDIUM = "UCmediummmmmmmmmmmmmmmmm"
TOOLS = ("ComfyUI", "Flux", "Blender", "Krita", "ControlNet", "LoRA")
NOUNS = ("sampler", "seed", "mask", "layer", "prompt", "node", "light", "texture", "canvas")
SENTENCE = re.compile(r"(?<=\.)\s+")
ROUTINGS: dict[str, dict[str, str]] = {
    "today's routing": {
        "KB_POLICY_REFINE_MODELS": '["claude-sonnet-5"]',
        "KB_POLICY_BATCH_PURPOSES": "{}",
    },
    "with batches": {"KB_POLICY_REFINE_MODELS": '["claude-sonnet-5"]'},
    "with the cascade": {"KB_POLICY_BATCH_PURPOSES": "{}"},
    "with both": {},
    "all-cloud (reference)": {
        "KB_POLICY_START_BY_PRIORITY": '{"medium": "cloud", "low": "cloud"}',
        "KB_POLICY_BATCH_PURPOSES": "{}",
    },
}


def transcript(video: int, tokens: int = 10_000) -> str:
    """About `tokens` tokens of talk, every sentence its own (no two videos alike)."""
    sentences, counted, n = [], 0, 0
    while counted < tokens:
        tool, noun = TOOLS[n % len(TOOLS)], NOUNS[(n * 7 + video) % len(NOUNS)]
        # A number that only this sentence has every few words: no stretch of a record
        # copied from it looks like a model repeating itself (kb stops looping answers).
        text = (
            f"In step {n} of video {video} we open {tool} at {3 * n + 1} percent, set the "
            f"{noun} to {n % 9 + 2} for pass {7 * n + 5}, so that the "
            f"{NOUNS[(n + 3) % len(NOUNS)]} stays sharp in take {11 * n + 3}."
        )
        sentences.append(text)
        counted += count_tokens(text) + 1
        n += 1
    return " ".join(sentences)


def rich_record(prompt: str, confidence: float = 0.9) -> dict[str, Any]:
    """A careful record of about 4,000 tokens: its quotes copied from the transcript."""
    text = transcript_in(prompt)
    if not text and "one JSON record per line" in prompt:  # a merge of parts
        parts = [json.loads(line) for line in prompt.splitlines() if line.startswith("{")]
        return {**parts[0], "confidence": confidence}
    sentences = SENTENCE.split(text)
    steps = [" ".join(sentences[i : i + 2])[:400] for i in range(0, 96, 2)]
    return {
        "summary": " ".join(sentences[:4])[:1200],
        "key_points": [s[:400] for s in sentences[200:212]],
        "techniques": [
            {"name": f"workflow {t}", "steps": steps[t * 6 : t * 6 + 6]} for t in range(8)
        ],
        "tools": [
            {"name": tool, "quote": next(s for s in sentences if f" {tool} " in s)[:400]}
            for tool in TOOLS
        ],
        "topics": ["generative art", "workflows"],
        "relevance": 0.8,
        "evidence_quotes": [" ".join(s.split()[:10]) for s in sentences[300:308]],
        "confidence": confidence,
    }


HARD_EVERY = 20  # one video in 20 (a quarter of the refined) is hard for claude-haiku-5-5


def kind(video: int, hard_every: int = HARD_EVERY) -> str:
    """Videos of the profile: 20% whose local draft falls short, some of those hard."""
    if video % 20 >= 4:
        return "calm"
    return "hard" if hard_every and video % hard_every == 0 else "hype"


def local_responder(request: Any) -> dict[str, Any]:
    if "Video title: hype" in request.user or "Video title: hard" in request.user:
        return fabricated(request.user)
    return rich_record(request.user)


def cloud_responder(request: Any) -> dict[str, Any]:
    if request.model == "claude-haiku-5-5" and "Video title: hard" in request.user:
        return fabricated(request.user)  # haiku's record falls short: sonnet goes on
    return rich_record(request.user)


def environment(directory: Path, ollama: FakeOllama, anthropic: FakeAnthropic) -> None:
    for name in list(os.environ):
        if name.startswith("KB_POLICY_"):
            del os.environ[name]
    os.environ.update(
        {
            "KB_LEDGER": str(directory / "kb.duckdb"),
            "OLLAMA_HOST": ollama.url,
            "ANTHROPIC_BASE_URL": anthropic.url,
            "ANTHROPIC_API_KEY": anthropic.api_key,
            "KB_OLLAMA_MAX_NUM_CTX": "32768",  # a 10k-token transcript read whole
            "KB_OLLAMA_MAX_OUTPUT_TOKENS": "6000",  # and a 4k-token record written whole,
            "KB_ANTHROPIC_MAX_OUTPUT_TOKENS": "6000",  # locally and in the cloud
            "KB_POLICY_MIN_WEEKLY_SHADOWS": "0",  # the sample is shadow_rate's 5% alone
            "KB_POLICY_WEEKLY_BUDGET_USD": "100000",
            "KB_YOUTUBE_PAUSE_SECONDS": "0",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )


def measure(name: str, videos: int, hard_every: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as directory,
        FakeOllama(models={"llama3.2": 131_072}, cold_load_s=0, parallel=4) as ollama,
        FakeAnthropic(min_cache_tokens=1024) as anthropic,
    ):
        ollama.responder = local_responder
        anthropic.responder = cloud_responder
        environment(Path(directory), ollama, anthropic)
        os.environ.update(ROUTINGS[name])
        ledger_path = Path(directory) / "kb.duckdb"
        seed_transcribed(
            ledger_path,
            [
                (f"vid{i:08d}", MEDIUM, f"{kind(i, hard_every)} {i}", transcript(i))
                for i in range(videos)
            ],
            {MEDIUM: "medium"},
        )
        started, runs = time.perf_counter(), 0
        while True:  # work that waits for a batch is finished by the next runs
            runs += 1
            summary = analyze_videos(limit=videos)
            if not summary.waiting or runs == 5:
                break
        seconds = time.perf_counter() - started
        ledger = Ledger(ledger_path)
        [money] = ledger.rows(
            "SELECT coalesce(sum(cost_usd), 0) AS cloud, coalesce(sum(energy_usd), 0) AS energy, "
            "count(*) FILTER (WHERE provider = 'anthropic' AND service_tier = 'batch') AS batch, "
            "count(*) FILTER (WHERE provider = 'anthropic') AS cloud_calls, "
            "avg(output_tokens) FILTER (WHERE provider = 'anthropic') AS out "
            "FROM llm_calls"
        )
        # The fake reports Ollama's durations at a real GPU's speed (800 prompt and 50 output
        # tokens a second) but answers at once, so the union of busy intervals kb charges is
        # far shorter than a real GPU would be busy. Also shown: the reported durations
        # shared by the 4 slots, at the default 350 W and $0.12 per kWh.
        [busy] = ledger.rows(
            "SELECT coalesce(sum(CAST(detail ->> 'busy_ms' AS DOUBLE)), 0) AS ms "
            "FROM llm_calls WHERE provider = 'ollama'"
        )
        gpu_usd = Decimal(str(busy["ms"] / 1000 / 4 * 350 / 3_600_000 * 0.12))
        [done] = ledger.rows(
            "SELECT count(*) AS n, sum(all_cloud_usd) AS estimate FROM routing_decisions "
            "WHERE route <> 'deferred'"
        )
        inputs = [
            reply["usage"]["input_tokens"]
            + reply["usage"]["cache_read_input_tokens"]
            + reply["usage"]["cache_creation_input_tokens"]
            for reply in anthropic.replies + anthropic.batch_replies
        ]
    return {
        "name": name,
        "videos": done["n"],
        "cloud": money["cloud"] / done["n"],
        "energy": money["energy"] / done["n"],
        "gpu": gpu_usd / done["n"],
        "estimate": (done["estimate"] or Decimal(0)) / done["n"],
        "cloud_calls": money["cloud_calls"],
        "batch_calls": money["batch"],
        "output_tokens": float(money["out"] or 0),
        "input_tokens": sum(inputs) / len(inputs) if inputs else 0,
        "runs": runs,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument(
        "--hard-every",
        type=int,
        default=HARD_EVERY,
        help="one video in this many gets a record from claude-haiku-5-5 that falls short "
        "(multiples of 20 only hit refined videos; 0: haiku is always enough)",
    )
    args = parser.parse_args()
    with prefect_test_harness(server_startup_timeout=180):  # a busy machine starts it slowly
        results = [measure(name, args.videos, args.hard_every) for name in ROUTINGS]
    reference = results[-1]
    print(
        f"{args.videos} videos, one in {args.hard_every or 'none'} hard for haiku; all-cloud "
        "(claude-sonnet-5, measured): "
        f"${reference['cloud']:.5f} per video, {reference['input_tokens']:,.0f} input and "
        f"{reference['output_tokens']:,.0f} output tokens per call"
    )
    print(
        f"{'routing':<22} {'cloud $/video':>14} {'energy $/video':>15} {'cloud':>7} "
        f"{'cloud+energy':>13} {'+GPU at reported':>17} {'cloud calls':>12} {'batched':>8} "
        f"{'runs':>5} {'s':>6}"
    )
    for r in results:
        print(
            f"{r['name']:<22} {r['cloud']:>14.6f} {r['energy']:>15.6f} "
            f"{float(r['cloud'] / reference['cloud']):>7.2%} "
            f"{float((r['cloud'] + r['energy']) / reference['cloud']):>13.2%} "
            f"{float((r['cloud'] + r['gpu']) / reference['cloud']):>17.2%} "
            f"{r['cloud_calls']:>12} {r['batch_calls']:>8} {r['runs']:>5} {r['seconds']:>6.1f}"
        )
    print(
        f"(kb's own all-cloud estimate, routing_decisions.all_cloud_usd: "
        f"${results[0]['estimate']:.5f} per video)"
    )


if __name__ == "__main__":
    main()
