"""What every `kb` command shares: the console, settings, the Prefect API, one-line errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import httpx
import typer
from rich.console import Console

from cli import prefect_api
from creatorkb.configuration import (
    BLOCK_NAME,
    BLOCK_SLUGS,
    Options,
    from_block,
    from_environment,
)
from creatorkb.errors import KBError
from creatorkb.liveness import LOCAL, Liveness
from creatorkb.settings import KBSettings

console = Console()
notices = Console(stderr=True, style="dim", highlight=False)  # what kb tells about itself
T = TypeVar("T")


def kb_settings() -> KBSettings:
    return KBSettings()


def run(action: Callable[[], T]) -> T:
    """Run an action; a KBError becomes a one-line message and exit status 1."""
    try:
        return action()
    except KBError as error:
        fail(str(error))
    except httpx.TransportError as error:  # e.g. the Prefect server went away mid-command
        fail(f"lost a connection: {type(error).__name__}: {error}")


def fail(message: str) -> typer.Exit:
    """Print `error: message` and exit with status 1."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


@functools.cache
def prefect_server() -> prefect_api.PrefectApi:
    """The Prefect API this command talks to, if any (nothing is started to find out)."""
    return run(prefect_api.discover)


def flow_server() -> prefect_api.PrefectApi:
    """The Prefect API a flow-running command uses (a temporary one when none runs); says
    which on stderr."""
    api = prefect_server()
    if api.source == "temporary":
        run(lambda: prefect_api.start_temporary_server(prefect_api.project_home()))
    notices.print(api.describe())
    return api


def holder_liveness(api: prefect_api.PrefectApi | None) -> Liveness:
    """How a command judges the holders of claims and reservations, as the flows do: by their
    flow run's state on the Prefect server when one runs (`api`), else (nothing is started to
    find out) by their PID on this host and their expiry."""
    if api is None or api.url is None:
        return LOCAL
    from flows.run_states import liveness

    return liveness()


def configured(options_type: type[Options], use_blocks: bool | None = None) -> Options:
    """Settings from the saved block when a Prefect API runs, else the environment: commands
    that run no flow neither start a temporary Prefect server to look nor import Prefect
    (the block is read over HTTP)."""
    slug = BLOCK_SLUGS.get(options_type)
    url = prefect_server().url if use_blocks is not False and slug else None
    if url is None or slug is None:
        return run(lambda: from_environment(options_type))
    data = run(lambda: prefect_api.read_block(url, slug, BLOCK_NAME))
    if data is None:
        return run(lambda: from_environment(options_type))
    return run(lambda: from_block(options_type, data))
