"""Which Prefect API a `kb` command uses, so that the CLI and the UI are one system.

In order: `PREFECT_API_URL` when it is set (checked: a server that is down is one line, not a
traceback); else the project's running `kb up` server, which records where it listens in
the project-local `PREFECT_HOME` (`.prefect/kb-up.json`); else a temporary server started
for the command. Everything kb starts keeps Prefect's usage telemetry off unless the user
opted in, and keeps its database in the project's `PREFECT_HOME`.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from creatorkb.errors import PrefectUnavailable

UP_FILE = "kb-up.json"
HEALTH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class PrefectApi:
    """The API a command uses; `url` None means a temporary server for this command."""

    url: str | None
    source: Literal["PREFECT_API_URL", "kb up", "temporary"]

    def describe(self) -> str:
        if self.source == "kb up":
            assert self.url is not None
            return f"Prefect: the `kb up` server at {ui_url(self.url)} (runs show in its UI)"
        if self.source == "PREFECT_API_URL":
            return f"Prefect: PREFECT_API_URL={self.url}"
        return (
            "Prefect: no `kb up` runs here, so a temporary server runs this command "
            "(start `kb up` to watch runs in the UI)"
        )


def project_home() -> Path:
    """Where Prefect keeps its database for this project: $PREFECT_HOME or ./.prefect."""
    configured = os.environ.get("PREFECT_HOME")
    return Path(configured).expanduser().resolve() if configured else Path.cwd() / ".prefect"


def prepare_environment() -> None:
    """Settings for every Prefect process kb starts or talks to; the user's values win.

    Call before anything imports prefect: Prefect reads its settings once, at import."""
    os.environ.setdefault("PREFECT_HOME", str(project_home()))
    if "PREFECT_SERVER_ANALYTICS_ENABLED" not in os.environ:
        # Usage telemetry is opt-in: it would leave through the user's proxy.
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        os.environ.setdefault("DO_NOT_TRACK", "1")


def ui_url(api_url: str) -> str:
    return api_url.rstrip("/").removesuffix("/api")


def check_health(api_url: str) -> None:
    """Raise PrefectUnavailable, saying what to do, when `api_url` does not answer."""
    try:
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S)
    except httpx.HTTPError as error:
        problem = f"{type(error).__name__}: {error}"
    else:
        if response.status_code == 200:
            return
        problem = f"HTTP {response.status_code}"
    raise PrefectUnavailable(
        f"the Prefect API at {api_url} is not answering ({problem}); start it (`kb up`) or "
        "unset PREFECT_API_URL to run with a temporary server"
    )


def running_kb_up(home: Path) -> dict[str, object] | None:
    """What the project's `kb up` recorded, if it is running and its server answers."""
    try:
        record = json.loads((home / UP_FILE).read_text(encoding="utf-8"))
        os.kill(int(record["pid"]), 0)
        response = httpx.get(f"{record['api_url']}/health", timeout=2.0)
    except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError):
        return None
    return record if response.status_code == 200 else None


def discover() -> PrefectApi:
    """The API to use, without starting anything; raises PrefectUnavailable when the
    configured one is down."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        check_health(configured)
        return PrefectApi(configured, "PREFECT_API_URL")
    record = running_kb_up(project_home())
    if record is not None:
        url = str(record["api_url"])
        os.environ["PREFECT_API_URL"] = url
        return PrefectApi(url, "kb up")
    return PrefectApi(None, "temporary")


# Prefect waits 20 s for its temporary server; a busy machine starting several commands at
# once (they take turns, below) needed more. PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
# still decides when set.
TEMPORARY_SERVER_START_S = 120


def start_temporary_server(home: Path) -> None:
    """Start this process's temporary Prefect server (the one the flows then use).

    A fresh database is created by the first server to start; two commands started at once
    would both run its migrations and one would fail, so they take turns on a file lock."""
    home.mkdir(parents=True, exist_ok=True)
    chosen = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    timeout = int(chosen) if chosen and chosen.isdigit() else TEMPORARY_SERVER_START_S
    with _exclusive(home / "kb-temporary-server.lock"):
        from prefect.server.api.server import SubprocessASGIServer

        try:  # a singleton: the flows' client finds it running
            SubprocessASGIServer().start(timeout=timeout)
        except RuntimeError as error:
            raise PrefectUnavailable(
                f"the temporary Prefect server for this command did not start within "
                f"{timeout} s ({str(error)[:300]}); start `kb up` in another shell and run "
                "the command again, or allow it longer with "
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
            ) from error


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_block(api_url: str, slug: str, name: str) -> dict[str, object] | None:
    """A saved block document's data (secrets included), or None when none is saved: read
    over HTTP, so that a command that only reads settings need not import Prefect."""
    try:
        response = httpx.get(
            f"{api_url}/block_types/slug/{slug}/block_documents/name/{name}",
            params={"include_secrets": "true"},
            timeout=HEALTH_TIMEOUT_S,
        )
    except httpx.TransportError as error:
        raise PrefectUnavailable(
            f"the Prefect API at {api_url} stopped answering while kb read the {slug} block "
            f"({type(error).__name__}); is the server still running?"
        ) from None
    if response.status_code == 404:
        return None
    response.raise_for_status()
    data: dict[str, object] = response.json()["data"]
    return data
