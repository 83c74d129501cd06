"""Weekly cost report: the week's money, local share, quality and the GPU's break-even."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from blocks import load_options
from creatorkb.ledger import Ledger, open_ledger
from creatorkb.report import IsoWeek, WeeklyReport, weekly_report
from creatorkb.report_html import render_html
from creatorkb.routing import RoutingPolicy
from creatorkb.settings import CostOptions, KBSettings
from flows.run_states import liveness


@task(name="compute-report", cache_policy=NONE)
def compute_report(
    ledger: Ledger, week: IsoWeek, costs: CostOptions, policy: RoutingPolicy
) -> WeeklyReport:
    """Every figure of the week, from the ledger."""
    return weekly_report(
        ledger, week, costs, policy.weekly_budget_usd, policy=policy, liveness=liveness()
    )


@task(name="record-report", cache_policy=NONE)
def record_report(ledger: Ledger, report: WeeklyReport) -> None:
    """The week's row in `weekly_reports` (a rerun replaces it)."""
    ledger.write(report.ledger_write())


@task(name="write-report-file", cache_policy=NONE)
def write_html(report: WeeklyReport, directory: Path) -> Path:
    """The report as a self-contained HTML page with charts."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.week}.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path.resolve()


@flow(name="weekly-cost-report")
def weekly_cost_report(
    week: Annotated[
        str | None,
        Field(
            pattern=r"^\d{4}-W\d{2}$",
        ),
    ] = None,
) -> WeeklyReport:
    """The report for ISO `week` (e.g. 2026-W47); by default the last complete week.

    Args:
        week: ISO week, e.g. 2026-W49 (default: the last complete week).
    """
    settings, costs, policy = KBSettings(), load_options(CostOptions), load_options(RoutingPolicy)
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    chosen = (
        IsoWeek.parse(week, timezone=costs.timezone)
        if week
        else IsoWeek.last_complete(datetime.now(UTC), costs.timezone)
    )
    report = compute_report(ledger, chosen, costs, policy)
    record_report(ledger, report)
    path = write_html(report, settings.reports)
    create_markdown_artifact(report.to_markdown(), key="weekly-cost-report")
    create_table_artifact(report.to_table(), key="weekly-cost-figures")
    get_run_logger().info("Report for %s written to %s", report.week, path)
    return report
