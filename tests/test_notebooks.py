"""Every analyst notebook runs, cell by cell, against a ledger the pipeline produced."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from creatorkb.ledger import Ledger
from creatorkb.report import IsoWeek, usd
from flows.analyze import analyze_videos
from tests.analysts import by_title, fabricated
from tests.conftest import run_kb
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.test_analysis import CRITICAL, MEDIUM, seed

pytestmark = pytest.mark.usefixtures("prefect_api")
NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))
MARIMO = str(Path(sys.executable).parent / "marimo")


def test_every_notebook_is_executed_by_a_test() -> None:
    # knowledge.py runs in tests/test_knowledge.py, on that module's pipeline run.
    assert [path.name for path in NOTEBOOKS] == ["knowledge.py", "roi_analysis.py"]


ROI = [path for path in NOTEBOOKS if path.stem == "roi_analysis"]


def export(notebook: Path, tmp_path: Path) -> str:
    """The notebook run cell by cell (`marimo export html`), as a page; any failing cell
    fails it. Nothing may be left in the scratch directory (no copy of the ledger)."""
    output = tmp_path / f"{notebook.stem}.html"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [MARIMO, "export", "html", str(notebook), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        # marimo keeps its session cache under the pycache prefix, not beside the notebook.
        env={**os.environ, "TMPDIR": str(scratch), "PYTHONPYCACHEPREFIX": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(scratch.iterdir()) == []
    return output.read_text(encoding="utf-8")


def analyzed(kb_env: Path, ollama: FakeOllama) -> Decimal:
    """Three videos analysed by the pipeline's flow into the file ledger; its cloud spend."""
    ollama.responder = by_title({"hype": fabricated})
    seed(
        kb_env,
        ("vid_nb00001", MEDIUM, "portrait"),
        ("vid_nb00002", MEDIUM, "hype"),
        ("vid_nb00003", CRITICAL, "portrait"),
    )
    analyze_videos()
    [cloud] = Ledger(kb_env / "data" / "kb.duckdb").rows(
        "SELECT sum(cost_usd) AS usd FROM llm_calls WHERE provider = 'anthropic'"
    )
    assert cloud["usd"] > 0
    return cloud["usd"]


def assert_shows_the_figures(page: str, cloud_usd: Decimal) -> None:
    this_week = IsoWeek.parse(f"{datetime.now(UTC):%G-W%V}")
    assert this_week != IsoWeek.last_complete(datetime.now(UTC), "UTC")
    # The week picker starts at the latest week with data (this one), not a variable's.
    assert f"Weekly cost report {this_week.label} (partial)" in page
    assert "Cost per day" in page and "Local share of calls" in page
    # The report's own charts, drawn inline (their titles are in no markdown cell).
    assert "Local share of calls by week" in page
    assert "Cumulative savings against the GPU" in page
    assert "UCmediummmmmmmmmmmmmmmmm" in page  # the creator slice lists the seeded creators
    assert usd(cloud_usd) in page  # the week's real cloud spend


@pytest.mark.parametrize("notebook", ROI, ids=lambda path: path.stem)
def test_notebook_runs_every_cell_on_a_real_ledger(
    notebook: Path,
    kb_env: Path,
    ollama: FakeOllama,
    anthropic: FakeAnthropic,
    tmp_path: Path,
) -> None:
    cloud_usd = analyzed(kb_env, ollama)
    assert_shows_the_figures(export(notebook, tmp_path), cloud_usd)


@pytest.mark.xdist_group("scale")  # one PostgreSQL for the session
@pytest.mark.parametrize("notebook", ROI, ids=lambda path: path.stem)
def test_notebook_reads_a_lake_read_only(
    notebook: Path,
    kb_env: Path,
    ollama: FakeOllama,
    anthropic: FakeAnthropic,
    lake_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The analyst's notebook over a DuckLake ledger (the file migrated to it): the same
    figures, read through a read-only attach, the password never shown."""
    cloud_usd = analyzed(kb_env, ollama)
    run_kb("ledger", "migrate-to", lake_url)
    monkeypatch.setenv("KB_LEDGER", lake_url + " password=s3cret")  # trust auth ignores it
    page = export(notebook, tmp_path)
    assert_shows_the_figures(page, cloud_usd)
    assert "s3cret" not in page
    assert "password=***" in page  # the lake it read, named without its password
