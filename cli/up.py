"""`kb up`: a Prefect server (API and UI) plus the deployments served beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 180


def run_up(console: Console, host: str, port: int, prefect_home: Path) -> int:
    """Run the server and the deployment server until interrupted; returns an exit status."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    api_url = f"http://{host}:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    console.print(f"starting the Prefect server (PREFECT_HOME={prefect_home}) ...")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", host, "--port", str(port)], env=env
    )
    children = [server]

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        if not _wait_healthy(api_url, server):
            console.print(f"[bold red]error:[/] the Prefect server did not come up at {api_url}")
            return 1
        served = subprocess.Popen(
            [sys.executable, "-m", "deployments.serve"], env={**env, "PREFECT_API_URL": api_url}
        )
        children.append(served)
        ui = api_url.removesuffix("/api")
        console.print(f"[green]UI[/] {ui}  (deployments served on their schedules; Ctrl-C stops)")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        return 1  # one of them died on its own
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def _wait_healthy(api_url: str, server: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False
