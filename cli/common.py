"""What every `kb` command shares: the console, settings, and one-line errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from creatorkb.errors import KBError
from creatorkb.settings import KBSettings, YouTubeOptions

console = Console()
T = TypeVar("T")


def kb_settings() -> KBSettings:
    return KBSettings()


def run(action: Callable[[], T]) -> T:
    """Run an action; a KBError becomes a one-line message and exit status 1."""
    try:
        return action()
    except KBError as error:
        fail(str(error))


def fail(message: str) -> typer.Exit:
    """Print `error: message` and exit with status 1."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def configured(load: Callable[[bool], T]) -> T:
    """Settings from the saved block when a Prefect API is configured, else the environment:
    commands that run no flow do not start a temporary Prefect server just to look."""
    return run(lambda: load(bool(os.environ.get("PREFECT_API_URL"))))


def youtube_options() -> YouTubeOptions:
    from blocks.youtube import load_youtube_options

    return configured(load_youtube_options)
