"""ROI analysis: the week's money, the local share, savings and the GPU's break-even.

Open it with `.venv/bin/marimo edit notebooks/roi_analysis.py` (or run it as a script). It
never holds the pipeline's ledger: it first copies the ledger (`Ledger.snapshot`, a brief
read-only attach that waits politely if the pipeline is writing) and queries the copy.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import os
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    import marimo as mo
    from matplotlib.figure import Figure

    from creatorkb.ledger import Ledger
    from creatorkb.report import IsoWeek, weekly_report
    from creatorkb.routing import RoutingPolicyEnvSettings
    from creatorkb.settings import CostEnvSettings

    return (
        CostEnvSettings,
        Figure,
        IsoWeek,
        Ledger,
        Path,
        RoutingPolicyEnvSettings,
        UTC,
        datetime,
        mo,
        os,
        tempfile,
        weekly_report,
    )


@app.cell
def _(Ledger, Path, mo, os, tempfile):
    ledger_path = Path(os.environ.get("KB_LEDGER", "data/kb.duckdb"))
    snapshot_path = Path(tempfile.gettempdir()) / f"kb-snapshot-{os.getpid()}.duckdb"
    ledger = Ledger(Ledger(ledger_path).snapshot(snapshot_path))
    mo.md(f"Reading a snapshot of `{ledger_path}` taken just now (`{snapshot_path}`).")
    return (ledger,)


@app.cell
def _(
    CostEnvSettings, IsoWeek, RoutingPolicyEnvSettings, UTC, datetime, ledger, mo, os, weekly_report
):
    costs = CostEnvSettings()
    policy = RoutingPolicyEnvSettings()
    week_text = os.environ.get("KB_REPORT_WEEK")
    week = (
        IsoWeek.parse(week_text, timezone=costs.timezone)
        if week_text
        else IsoWeek.last_complete(datetime.now(UTC), costs.timezone)
    )
    report = weekly_report(ledger, week, costs, policy.weekly_budget_usd)
    mo.md(report.to_markdown())
    return costs, report


@app.cell
def _(Figure, mo, report):
    days = report.days
    figure = Figure(figsize=(7, 3))
    axes = figure.subplots()
    labels = [day.day.strftime("%a") for day in days]
    cloud = [float(day.cloud_usd) for day in days]
    energy = [float(day.energy_usd) for day in days]
    axes.bar(labels, cloud, label="cloud $")
    axes.bar(labels, energy, bottom=cloud, label="local energy $")
    axes.set_title(f"Cost per day, {report.week}")
    axes.legend()
    mo.vstack([mo.md("## Cost per day"), figure])
    return


@app.cell
def _(Figure, mo, report):
    history = report.history
    trend = Figure(figsize=(7, 3))
    share_axes, savings_axes = trend.subplots(1, 2)
    weeks = [point.week for point in history]
    share_axes.plot(weeks, [point.local_share_calls or 0 for point in history], marker="o")
    share_axes.axhline(0.8, linestyle="--", label="target 80%")
    share_axes.set_title("Local share of calls")
    share_axes.legend()
    savings_axes.plot(weeks, [float(point.cumulative_savings_usd) for point in history])
    savings_axes.axhline(float(report.roi.gpu_price_usd), linestyle="--", label="GPU price")
    savings_axes.set_title("Cumulative savings")
    savings_axes.legend()
    trend.autofmt_xdate()
    mo.vstack([mo.md("## Trends"), trend])
    return


@app.cell
def _(ledger, mo):
    creators = [row["name"] for row in ledger.rows("SELECT name FROM creators ORDER BY name")]
    models = [
        row["model"] for row in ledger.rows("SELECT DISTINCT model FROM llm_calls ORDER BY 1")
    ]
    creator = mo.ui.dropdown(["all", *creators], value="all", label="creator")
    model = mo.ui.dropdown(["all", *models], value="all", label="model")
    mo.hstack([creator, model])
    return creator, model


@app.cell
def _(creator, ledger, mo, model):
    sliced = ledger.frame(
        """
        SELECT coalesce(c.name, '(prompts)') AS creator, l.model, l.provider,
               count(*) AS calls, sum(l.cost_usd) AS cloud_usd, sum(l.energy_usd) AS energy_usd,
               sum(l.cloud_equivalent_usd) AS cloud_equivalent_usd,
               sum(l.cloud_equivalent_usd - l.cost_usd - l.energy_usd) AS savings_usd
        FROM llm_calls l
        LEFT JOIN videos v USING (video_id)
        LEFT JOIN creators c ON c.channel_id = v.channel_id
        WHERE (? = 'all' OR c.name = ?) AND (? = 'all' OR l.model = ?)
        GROUP BY ALL ORDER BY savings_usd DESC
        """,
        [creator.value, creator.value, model.value, model.value],
    )
    mo.vstack([mo.md("## By creator and model (all time)"), mo.ui.table(sliced)])
    return


if __name__ == "__main__":
    app.run()
