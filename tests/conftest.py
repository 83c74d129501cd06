"""Shared fixtures: one real Prefect server per session, isolated kb settings per test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from creatorkb.ledger import Ledger, Write
from tests.analysts import careful
from tests.postgres import Postgres
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.servers.youtube import FakeYouTube

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KB = str(BIN / "kb")


def run_kb(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """`kb` as a user runs it (a wide terminal, the test's environment); checks the exit."""
    done = subprocess.run(
        [KB, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == expect, f"kb {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def ledger_of(kb_env: Path) -> Ledger:
    """The ledger a test's flows write (KB_LEDGER of the `kb_env` fixture)."""
    return Ledger(kb_env / "data" / "kb.duckdb")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrefectServer:
    """A real `prefect server start` on a free loopback port (`database`: a SQLAlchemy URL of
    its database; Prefect's SQLite in its home when None)."""

    def __init__(self, home: Path, database: str | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
        }
        if database:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = database
        env.pop("PREFECT_API_URL", None)
        self._log = (home / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(
                    f"prefect server did not start: {(home / 'server.log').read_text()}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server start` on a free loopback port, shared by the whole session."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_API_URL"] = server.url
    with temporary_settings(updates={PREFECT_API_URL: server.url}):
        yield server.url
        # Send the last run logs before the server goes away.
        APILogWorker.drain_all(timeout=10)
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One real PostgreSQL server for the session (Debian's binaries, initdb into a temporary
    directory, a free port on 127.0.0.1); tests create databases of their own on it."""
    with Postgres() as server:
        yield server


@pytest.fixture(scope="session")
def prefect_on_postgres(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServer]:
    """A Prefect server on PostgreSQL (not its SQLite), as a scaled-out owner runs it."""
    postgres.create_database("prefect")
    server = PrefectServer(tmp_path_factory.mktemp("prefect-pg-home"), postgres.url("prefect"))
    yield server
    server.stop()


@pytest.fixture
def lake_url(postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty DuckLake ledger: a database of the session's PostgreSQL as its catalog,
    its data files in tmp_path (KB_LEDGER_DATA_PATH)."""
    name = f"lake_{tmp_path.name.replace('-', '_').lower()}"[:60]
    url = "ducklake:postgres:" + postgres.create_database(name)
    monkeypatch.setenv("KB_LEDGER_DATA_PATH", str(tmp_path / "lake-data") + "/")
    return url


@pytest.fixture
def kb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ledger and roster in a fresh directory; YouTube politeness pauses off for speed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KB_LEDGER", str(tmp_path / "data" / "kb.duckdb"))
    monkeypatch.setenv("KB_CREATORS", str(tmp_path / "creators.yaml"))
    monkeypatch.setenv("KB_LEDGER_WAIT_SECONDS", "5")
    monkeypatch.setenv("KB_YOUTUBE_PAUSE_SECONDS", "0")
    monkeypatch.setenv("KB_YOUTUBE_FEED_RETRY_DELAY_SECONDS", "0.05")
    # Shadow sampling is random-looking; tests that want it turn it on.
    monkeypatch.setenv("KB_POLICY_SHADOW_RATE", "0")
    monkeypatch.setenv("KB_POLICY_MIN_WEEKLY_SHADOWS", "0")
    # Refines and shadows answered at once; the batch tests let them wait for a batch.
    monkeypatch.setenv("KB_POLICY_BATCH_PURPOSES", "{}")
    for name in (
        "YOUTUBE_API_KEY",
        "KB_YOUTUBE_PROXY_URL",
        "KB_YOUTUBE_DATA_API_KEY",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OLLAMA_HOST",
    ):
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


@pytest.fixture
def ollama(kb_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    """An Ollama-shaped server on loopback, used through OLLAMA_HOST."""
    with FakeOllama(cold_load_s=0.0) as fake:
        fake.responder = careful
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        monkeypatch.setenv("KB_OLLAMA_DRAFT_MODEL", "llama3.2")
        yield fake


@pytest.fixture
def anthropic(kb_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """An Anthropic-shaped server on loopback, used through ANTHROPIC_BASE_URL."""
    with FakeAnthropic(min_cache_tokens=256) as fake:
        fake.responder = careful
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
        yield fake


def seed_transcribed(
    ledger_path: Path, videos: list[tuple[str, str, str, str]], channel_priority: dict[str, str]
) -> None:
    """Put transcribed videos (video_id, channel_id, title, transcript) in the ledger."""
    ledger = Ledger(ledger_path)
    ledger.migrate()
    now = datetime.now(UTC)
    creators = [
        {
            "channel_id": channel,
            "name": channel,
            "handle": None,
            "priority": priority,
            "scan_interval_days": None,
            "last_scanned_at": now,
            "feed_etag": None,
            "feed_last_modified": None,
            "added_at": now,
        }
        for channel, priority in channel_priority.items()
    ]
    rows = [
        {
            "video_id": video_id,
            "channel_id": channel,
            "title": title,
            "description": "",
            "published_at": now - timedelta(minutes=index),
            "status": "transcribed",
            "status_reason": None,
            "source": "feed",
            "fetch_attempts": 1,
            "next_fetch_at": None,
            "discovered_at": now,
            "updated_at": now,
        }
        for index, (video_id, channel, title, _) in enumerate(videos)
    ]
    transcripts = [
        {
            "video_id": video_id,
            "language": "en",
            "language_name": "English",
            "is_generated": False,
            "text": text,
            "fetched_at": now,
        }
        for video_id, _, _, text in videos
    ]
    ledger.write(
        Write.insert_new("creators", ("channel_id",), creators),
        Write.insert_new("videos", ("video_id",), rows),
        Write.insert_new("transcripts", ("video_id",), transcripts),
    )
