"""Shared fixtures: one real Prefect server per session, isolated kb settings per test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.servers.youtube import FakeYouTube

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server start` on a free loopback port, shared by the whole session."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"prefect server did not start: {(home / 'server.log').read_text()}")
        time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = url
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url
        # Send the last run logs before the server goes away.
        APILogWorker.drain_all(timeout=10)
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture
def kb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ledger and roster in a fresh directory; YouTube politeness pauses off for speed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KB_LEDGER", str(tmp_path / "data" / "kb.duckdb"))
    monkeypatch.setenv("KB_CREATORS", str(tmp_path / "creators.yaml"))
    monkeypatch.setenv("KB_LEDGER_WAIT_SECONDS", "5")
    monkeypatch.setenv("KB_YOUTUBE_PAUSE_SECONDS", "0")
    monkeypatch.setenv("KB_YOUTUBE_FEED_RETRY_DELAY_SECONDS", "0.05")
    for name in ("YOUTUBE_API_KEY", "KB_YOUTUBE_PROXY_URL", "KB_YOUTUBE_DATA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def youtube(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeYouTube]:
    """A YouTube-shaped HTTPS server reached only through HTTPS_PROXY with a private CA."""
    with FakeYouTube() as fake:
        for name, value in fake.proxy_env().items():
            monkeypatch.setenv(name, value)
        # Loopback services (the Prefect API, model servers) are reached directly.
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        yield fake
