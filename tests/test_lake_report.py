"""The weekly report read from a DuckLake ledger: `kb report` prints the same figures as
against the file ledger the lake was migrated from (`kb ledger migrate-to`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from creatorkb.ledger import Ledger, Write
from creatorkb.report import IsoWeek, usd
from tests.conftest import run_kb
from tests.test_report import (
    berlin,
    week_ledger_file,  # noqa: F401  (the fixture: a week of calls)
)

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.xdist_group("scale")]

# The costs tests/test_report.py computes its week with (COSTS), as a user sets them.
COST_ENV = {
    "KB_COST_REFERENCE_MODEL": "claude-sonnet-4-5",
    "KB_COST_TIMEZONE": "Europe/Berlin",
    "KB_COST_PROJECTION_WEEKS": "3",
    "KB_COST_GPU_IDLE_WATTS": "100",
    "KB_COST_GPU_HOURS_PER_WEEK": "10",
    "KB_POLICY_WEEKLY_BUDGET_USD": "10",
}
WEEK = "2026-W47"


def lost_call(sent_at: datetime) -> Write:
    """The open reservation of a cloud call sent at `sent_at` that was never answered."""
    row = {
        "reservation_id": "r-lost",
        "created_at": sent_at,
        "week_start": IsoWeek.parse(WEEK, timezone=COST_ENV["KB_COST_TIMEZONE"]).start_utc,
        "amount_usd": Decimal("0.25"),
        "status": "open",
        "expires_at": sent_at + timedelta(hours=1),
        "flow_run_id": None,
        "holder": "gpu-box-2:4242",
        "call_id": None,
        "sent_at": sent_at,
        "model": "claude-sonnet-4-5",
        "purpose": "direct",
    }
    return Write.insert_new("budget_reservations", ("reservation_id",), [row])


def printed_report(ledger: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`kb report` of the week as a user reads it, without the line naming the HTML file."""
    monkeypatch.setenv("KB_LEDGER", ledger)
    done = run_kb("report", "--week", WEEK)
    # The lines naming the HTML file and the minute it was generated differ by nature.
    lines = [
        line
        for line in done.stdout.splitlines()
        if not line.startswith("HTML:") and ", generated " not in line
    ]
    return "\n".join(lines)


def test_kb_report_on_a_lake_prints_the_figures_of_the_file_it_was_migrated_from(
    week_ledger_file: Path,  # noqa: F811
    lake_url: str,
    kb_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in COST_ENV.items():
        monkeypatch.setenv(name, value)
    path = Ledger(week_ledger_file).snapshot(kb_env / "data" / "kb.duckdb")
    # A call sent in the week whose answer never came (its reservation long expired).
    Ledger(path).write(lost_call(berlin(11, 18, 12)))
    run_kb("ledger", "migrate-to", lake_url)  # before either report records its row

    from_file = printed_report(str(path), monkeypatch)
    from_lake = printed_report(lake_url, monkeypatch)

    # The week's figures as tests/test_report.py counts them by hand.
    assert usd(Decimal("0.204")) in from_file and usd(Decimal("0.207")) in from_file
    assert f"up to {usd(Decimal('0.25'))} (1 calls sent" in from_file
    assert from_lake == from_file
    # Each ledger recorded its report, with the same figures.
    figures = "cloud_usd, energy_usd, cloud_equivalent_usd, savings_usd, local_share_calls"
    sql = f"SELECT week, {figures}, break_even_month FROM weekly_reports"
    [file_row] = Ledger(path).rows(sql)
    assert Ledger(lake_url).rows(sql) == [file_row]
    assert file_row["cloud_usd"] > Decimal(0)
