"""Every analyst notebook runs, cell by cell, against a ledger the pipeline produced."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from creatorkb.ledger import Ledger
from creatorkb.report import IsoWeek, usd
from flows.analyze import analyze_videos
from tests.analysts import by_title, fabricated
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


@pytest.mark.parametrize("notebook", ROI, ids=lambda path: path.stem)
def test_notebook_runs_every_cell_on_a_real_ledger(
    notebook: Path,
    kb_env: Path,
    ollama: FakeOllama,
    anthropic: FakeAnthropic,
    tmp_path: Path,
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    seed(
        kb_env,
        ("vid_nb00001", MEDIUM, "portrait"),
        ("vid_nb00002", MEDIUM, "hype"),
        ("vid_nb00003", CRITICAL, "portrait"),
    )
    analyze_videos()
    week = IsoWeek.last_complete(datetime.now(UTC), "UTC")
    this_week = IsoWeek.parse(f"{datetime.now(UTC):%G-W%V}")
    assert this_week != week
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

    assert done.returncode == 0, done.stdout + done.stderr  # any failing cell fails this
    page = output.read_text(encoding="utf-8")
    # The week picker starts at the latest week with data (this one), not a variable's.
    assert f"Weekly cost report {this_week.label} (partial)" in page
    assert list(scratch.iterdir()) == []  # no copy of the ledger left behind
    assert "Cost per day" in page and "Local share of calls" in page
    # The report's own charts, drawn inline (their titles are in no markdown cell).
    assert "Local share of calls by week" in page
    assert "Cumulative savings against the GPU" in page
    assert "UCmediummmmmmmmmmmmmmmmm" in page  # the creator slice lists the seeded creators
    [cloud] = Ledger(kb_env / "data" / "kb.duckdb").rows(
        "SELECT sum(cost_usd) AS usd FROM llm_calls WHERE provider = 'anthropic'"
    )
    assert cloud["usd"] > 0 and usd(cloud["usd"]) in page  # the week's real cloud spend
