"""`kb up`: a Prefect server (API and UI) plus the deployments served beside it.

The server and the deployment runner run in sessions of their own, so a Ctrl-C in the
terminal reaches only `kb up`, which then stops them in order: the runner first (SIGINT, its
clean shutdown), then the server. Where the server listens is written to the project's
PREFECT_HOME (`kb-up.json`), so kb commands started in this project use it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

from cli.prefect_api import UP_FILE, running_kb_up, ui_url

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 180
STOP_TIMEOUT_S = 15


def run_up(console: Console, host: str, port: int, prefect_home: Path) -> int:
    """Run the server and the deployment runner until interrupted; returns an exit status."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    already = running_kb_up(prefect_home)
    if already is not None:
        console.print(
            f"[bold red]error:[/] `kb up` already runs for this project (pid {already['pid']}, "
            f"{ui_url(str(already['api_url']))}); stop it first or use that one"
        )
        return 1
    if not _port_free(host, port):
        console.print(
            f"[bold red]error:[/] port {port} on {host} is in use (another Prefect server?); "
            "stop it or choose another with --port"
        )
        return 1
    api_url = f"http://{host}:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    log_path = prefect_home / "server.log"
    console.print(f"starting the Prefect server (PREFECT_HOME={prefect_home}) ...")
    children: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with log_path.open("ab") as log:
        try:
            server = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", host, "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_interruptible,
            )
            children.append(server)
            if not _wait_healthy(api_url, server):
                console.print(
                    f"[bold red]error:[/] the Prefect server did not come up at {api_url}; "
                    f"its log is {log_path}"
                )
                return 1
            _record(prefect_home, api_url)
            runner = subprocess.Popen(
                [sys.executable, "-m", "deployments.serve"],
                env={**env, "PREFECT_API_URL": api_url},
                start_new_session=True,
                preexec_fn=_interruptible,
            )
            children.append(runner)
            _banner(console, api_url, log_path)
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            return 1  # one of them died on its own
        except KeyboardInterrupt:
            console.print("stopping ...")
            return 0
        finally:
            (prefect_home / UP_FILE).unlink(missing_ok=True)
            for child in reversed(children):  # the runner first: it pauses its schedules
                _stop(child)


def _banner(console: Console, api_url: str, log_path: Path) -> None:
    console.print(f"[green]UI[/]   {ui_url(api_url)}")
    console.print(f"[green]API[/]  {api_url}  (server log: {log_path})")
    from deployments.serve import read_specs

    for spec in read_specs():
        when = ", ".join(_schedule_text(s) for s in spec.schedules) or "on demand"
        console.print(f"  served  {spec.name:<22} {when}", highlight=False)
    console.print(
        "kb commands run in this directory use this server; elsewhere, point a shell at it with:"
    )
    console.print(f"    export PREFECT_API_URL={api_url}", highlight=False)
    console.print("Ctrl-C stops the server and the deployments.")


def _schedule_text(schedule: dict[str, object]) -> str:
    if "cron" in schedule:
        return f"cron {schedule['cron']}"
    seconds = float(str(schedule["interval"]))
    return f"every {seconds / 3600:g} hours" if seconds >= 3600 else f"every {seconds:g} s"


def _record(prefect_home: Path, api_url: str) -> None:
    record = {"pid": os.getpid(), "api_url": api_url, "ui_url": ui_url(api_url)}
    partial = prefect_home / (UP_FILE + ".tmp")
    partial.write_text(json.dumps(record), encoding="utf-8")
    partial.replace(prefect_home / UP_FILE)


def _interruptible() -> None:
    """In a child: take SIGINT as an interrupt even when `kb up` was started with it ignored
    (as a shell does for background jobs), since SIGINT is how the child is stopped."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGINT (both Prefect processes shut down cleanly on it), then SIGKILL if it hangs."""
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


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
