"""How long the everyday commands take, as a user runs them, against the loopback fakes.

    .venv/bin/python bench/commands.py [--repeat 3]

In a fresh project (one creator, already scanned and analysed, so `kb run` has nothing to
do), times `kb run`, `kb doctor` and `kb report` against a running `kb up`, and for
comparison `kb run` and `kb doctor` with no server running. Goals (issue 8): with `kb up`,
`kb run` with nothing to do < 10 s, `kb doctor` < 3 s, `kb report` < 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for the loopback fakes in tests/servers

from tests.analysts import careful  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.servers.anthropic import FakeAnthropic  # noqa: E402
from tests.servers.ollama import FakeOllama  # noqa: E402
from tests.servers.youtube import FakeYouTube  # noqa: E402

KB = str(Path(sys.executable).parent / "kb")
CHANNEL = "UCbenchbbbbbbbbbbbbbbbbb"
GOALS = {"kb run": 10.0, "kb doctor": 3.0, "kb report": 5.0}


def timed(project: Path, env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([KB, *args], cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1) or "Traceback" in done.stderr:
        raise SystemExit(f"kb {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def series(project: Path, env: dict[str, str], repeat: int, *args: str) -> str:
    times = [timed(project, env, *args) for _ in range(repeat)]
    return f"median {statistics.median(times):5.2f} s  (min {min(times):.2f}, max {max(times):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    project = Path(tempfile.mkdtemp(prefix="kb-bench-commands-"))
    with FakeYouTube() as youtube, FakeOllama(cold_load_s=0) as ollama, FakeAnthropic() as cloud:
        ollama.responder = cloud.responder = careful
        youtube.add_channel(CHANNEL, "Bench")
        youtube.add_video(CHANNEL, transcript_text="We wire ComfyUI to Flux. Then a LoRA.")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KB_"))}
        env.update(youtube.proxy_env())
        env.update(
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            OLLAMA_HOST=ollama.url,
            ANTHROPIC_BASE_URL=cloud.url,
            ANTHROPIC_API_KEY=cloud.api_key,
            KB_YOUTUBE_PAUSE_SECONDS="0",
        )
        subprocess.run([KB, "init"], cwd=project, env=env, check=True, capture_output=True)
        subprocess.run(
            [KB, "creators", "add", CHANNEL, "--name", "Bench"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
        print(f"first kb run (temporary server, one video): {timed(project, env, 'run'):.2f} s")
        print("no server running:")
        print(f"  kb run     {series(project, env, repeat, 'run')}")
        print(f"  kb doctor  {series(project, env, repeat, 'doctor')}")
        port = free_port()
        up = subprocess.Popen(
            [KB, "up", "--port", str(port)],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            record = project / ".prefect" / "kb-up.json"
            while not record.exists():
                time.sleep(0.5)
            print(f"against kb up ({json.loads(record.read_text())['api_url']}):")
            for label, args in (
                ("kb run", ["run"]),
                ("kb doctor", ["doctor"]),
                ("kb report", ["report"]),
            ):
                figures = series(project, env, repeat, *args)
                print(f"  {label:<10} {figures}  goal < {GOALS[label]:g} s")
        finally:
            os.killpg(up.pid, signal.SIGINT)
            up.wait(timeout=60)


if __name__ == "__main__":
    main()
