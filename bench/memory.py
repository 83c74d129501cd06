"""Memory benchmark: peak RSS of `kb analyze` while it analyses 10,000 videos against
loopback model servers (no latency: the run is as busy as it can be), with transcripts as
long as real ones (about 40,000 characters: read in parts and merged, then indexed).

    .venv/bin/python bench/memory.py [--videos 10000] [--transcript-chars 40000]
                                     [--trace FILE] [--keep LEDGER]

Target: peak RSS under 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # nothing leaves the machine
sys.path.insert(0, str(ROOT))  # for the loopback fakes in tests/servers

from prefect.settings import PREFECT_API_URL  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from tests.analysts import by_title, fabricated  # noqa: E402
from tests.conftest import seed_transcribed  # noqa: E402
from tests.servers.anthropic import FakeAnthropic  # noqa: E402
from tests.servers.ollama import FakeOllama  # noqa: E402

TALK = (
    "Today we build a portrait workflow in ComfyUI. First load the Flux model and set the "
    "sampler to twenty steps. Then add a LoRA for the painterly style. Finally upscale."
)
MEDIUM, CRITICAL = "UCmediummmmmmmmmmmmmmmmm", "UCcriticalccccccccccccccc"


def transcript(number: int, chars: int) -> str:
    """A transcript of about `chars` characters, its sentences numbered so no two videos
    (and no two parts of one) read alike."""
    sentences, length, n = [], 0, 0
    while length < chars:
        sentence = f"In part {n} of video {number} we tune step {n * 7 % 31}. {TALK}"
        sentences.append(sentence)
        length += len(sentence) + 1
        n += 1
    return " ".join(sentences)[:chars]


# Starts `kb analyze` and reports its peak RSS. A child started from this benchmark's own
# process would report this process's peak instead when it is larger (the kernel keeps the
# larger of the parent's memory it was spawned from and its own across exec), so the kb
# process is started from this small launcher, started before the transcripts are made.
LAUNCHER = """
import json, os, subprocess, sys
request = json.loads(sys.stdin.readline())
with open(request["log"], "w") as log:
    child = subprocess.Popen(request["argv"], env=request["env"], stdout=log, stderr=log)
    print(child.pid, flush=True)
    _, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "peak_kb": usage.ru_maxrss}))
"""


def trace_rss(pid: int, path: Path) -> None:
    """Where in the run memory grows: RSS and peak RSS (VmHWM) four times a second, so that
    even a peak between two samples is placed.
    (It reads /proc only: polling the process would reap it before `os.wait4`.)"""
    started = time.perf_counter()
    with path.open("w") as trace:
        while True:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                return
            if "VmRSS" not in status:  # a zombie: the run has ended
                return
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            rss, peak = (int(fields[name].split()[0]) // 1024 for name in ("VmRSS", "VmHWM"))
            trace.write(f"{time.perf_counter() - started:.1f} {rss} {peak}\n")
            trace.flush()
            time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--transcript-chars", type=int, default=40_000)
    parser.add_argument(
        "--trace",
        type=Path,
        help="write the kb process's RSS and peak (MB) four times a second to this file",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="copy the analysed ledger here (to measure its later steps on their own)",
    )
    args = parser.parse_args()
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    with (
        tempfile.TemporaryDirectory() as directory,
        FakeOllama(cold_load_s=0) as ollama,
        FakeAnthropic(min_cache_tokens=256) as anthropic,
        prefect_test_harness(),
    ):
        ollama.responder = by_title({"hype": fabricated})
        anthropic.responder = by_title({})
        ledger = Path(directory) / "kb.duckdb"
        kinds = ("calm", "calm", "hype", "critical")
        seed_transcribed(
            ledger,
            [
                (
                    f"vid{i:08d}",
                    CRITICAL if kinds[i % 4] == "critical" else MEDIUM,
                    f"{kinds[i % 4]} {i}",
                    transcript(i, args.transcript_chars),
                )
                for i in range(args.videos)
            ],
            {MEDIUM: "medium", CRITICAL: "critical"},
        )
        env = {
            **os.environ,
            "PREFECT_API_URL": PREFECT_API_URL.value(),
            "KB_LEDGER": str(ledger),
            "OLLAMA_HOST": ollama.url,
            "ANTHROPIC_BASE_URL": anthropic.url,
            "ANTHROPIC_API_KEY": anthropic.api_key,
            "KB_POLICY_SHADOW_RATE": "0",
            "KB_POLICY_BATCH_PURPOSES": "{}",
            "KB_POLICY_MIN_WEEKLY_SHADOWS": "0",
            "KB_POLICY_WEEKLY_BUDGET_USD": "100000",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        started = time.perf_counter()
        log_path = Path(directory) / "kb.log"
        argv = [str(Path(sys.executable).parent / "kb"), "analyze", "--limit", str(args.videos)]
        launcher.stdin.write(json.dumps({"argv": argv, "env": env, "log": str(log_path)}) + "\n")
        launcher.stdin.flush()
        pid = int(launcher.stdout.readline())
        if args.trace:
            threading.Thread(target=trace_rss, args=(pid, args.trace), daemon=True).start()
        outcome = json.loads(launcher.stdout.readline())
        launcher.wait()
        elapsed = time.perf_counter() - started
        log = log_path.read_text()
        if args.keep and not outcome["exit"]:
            shutil.copyfile(ledger, args.keep)
    if outcome["exit"]:
        sys.exit(f"kb analyze failed:\n{log[-6000:]}")
    peak_mb = outcome["peak_kb"] / 1024
    print(
        f"kb analyze: {args.videos:,} videos of {args.transcript_chars:,} characters in "
        f"{elapsed:.0f} s ({args.videos / elapsed:.1f} videos/s)"
    )
    print(f"peak RSS of the kb process: {peak_mb:.0f} MB")
    print(f"target < 500 MB: {'met' if peak_mb < 500 else 'MISSED'}")


if __name__ == "__main__":
    main()
