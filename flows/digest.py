"""Weekly knowledge digest: per creator, what the week's videos taught."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from blocks import load_options
from creatorkb.digest import Digest, week_digest
from creatorkb.ledger import Ledger, open_ledger
from creatorkb.mentions import Names
from creatorkb.report import IsoWeek
from creatorkb.settings import CostOptions, KBSettings, KnowledgeOptions


@task(name="compose-digest", cache_policy=NONE)
def compose_digest(ledger: Ledger, week: IsoWeek, names: Names) -> Digest:
    """The week's analysed videos, new tools and techniques and key points, by creator."""
    with ledger.connect() as connection:
        return week_digest(connection, week, names)


@task(name="write-digest-file", cache_policy=NONE)
def write_digest(digest: Digest, directory: Path) -> Path:
    """reports/digest-<week>.md, replaced whole (written beside it, then renamed)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"digest-{digest.week}.md"
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=directory, prefix=f".{path.name}.", delete=False
    ) as partial:
        partial.write(digest.to_markdown() + "\n")
    os.replace(partial.name, path)
    return path.resolve()


@flow(name="knowledge-digest")
def knowledge_digest(
    week: Annotated[str | None, Field(pattern=r"^\d{4}-W\d{2}$")] = None,
) -> Digest:
    """The digest of ISO `week` (e.g. 2026-W49); by default the last complete week.

    Args:
        week: ISO week, e.g. 2026-W49; empty: the last complete week.
    """
    settings, costs = KBSettings(), load_options(CostOptions)
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    chosen = (
        IsoWeek.parse(week, timezone=costs.timezone)
        if week
        else IsoWeek.last_complete(datetime.now(UTC), costs.timezone)
    )
    digest = compose_digest(ledger, chosen, Names(load_options(KnowledgeOptions).aliases))
    path = write_digest(digest, settings.reports)
    create_markdown_artifact(digest.to_markdown(), key="knowledge-digest")
    get_run_logger().info("Digest for %s written to %s", digest.week, path)
    return digest
