"""ROI analysis: the week's money, the local share, savings and the GPU's break-even.

Open it with `.venv/bin/marimo edit notebooks/roi_analysis.py` (or run it as a script) and
pick a week. It never holds the pipeline's ledger: it first copies the ledger
into memory (`Ledger.copy_in_memory`: a brief read-only attach that waits politely if the
pipeline is writing; a DuckLake ledger is attached read-only, which never blocks a writer)
and queries the copy; nothing is written to disk.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    from datetime import UTC, datetime

    import marimo as mo

    from creatorkb.configuration import from_environment
    from creatorkb.ledger import Ledger
    from creatorkb.report import IsoWeek, weekly_report
    from creatorkb.report_html import cost_per_day_chart, local_share_chart, savings_chart
    from creatorkb.routing import RoutingPolicy
    from creatorkb.settings import CostOptions, KBSettings

    return (
        CostOptions,
        IsoWeek,
        KBSettings,
        Ledger,
        RoutingPolicy,
        UTC,
        cost_per_day_chart,
        datetime,
        from_environment,
        local_share_chart,
        mo,
        savings_chart,
        weekly_report,
    )


@app.cell
def _(KBSettings, Ledger, mo):
    source = Ledger(KBSettings().ledger)
    # A copy in memory: the pipeline's file is held only while copying (a lake is attached
    # read-only, blocking no one), and nothing is left behind.
    ledger = source.copy_in_memory()
    # source.path names a lake without its password (the page may be shared).
    mo.md(f"Reading a copy of `{source.path}` taken just now.")
    return (ledger,)


@app.cell
def _(CostOptions, IsoWeek, UTC, datetime, from_environment, ledger, mo):
    costs = from_environment(CostOptions)
    weeks = [
        row["week"]
        for row in ledger.rows(
            "SELECT DISTINCT strftime(date_trunc('week', timezone(?, ts)), '%G-W%V') AS week "
            "FROM llm_calls ORDER BY week DESC",
            [costs.timezone],
        )
    ]
    fallback = IsoWeek.last_complete(datetime.now(UTC), costs.timezone).label
    week_picker = mo.ui.dropdown(weeks or [fallback], value=(weeks or [fallback])[0], label="week")
    mo.hstack([week_picker])
    return costs, week_picker


@app.cell
def _(IsoWeek, RoutingPolicy, costs, from_environment, ledger, mo, week_picker, weekly_report):
    policy = from_environment(RoutingPolicy)
    week = IsoWeek.parse(week_picker.value, timezone=costs.timezone)
    report = weekly_report(ledger, week, costs, policy.weekly_budget_usd, policy=policy)
    mo.md(report.to_markdown())
    return (report,)


@app.cell
def _(cost_per_day_chart, mo, report):
    mo.vstack([mo.md("## Cost per day"), cost_per_day_chart(report)])
    return


@app.cell
def _(local_share_chart, mo, report, savings_chart):
    mo.vstack([mo.md("## Trends"), local_share_chart(report), savings_chart(report)])
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
    # Savings per job: what one direct reference-model call would have cost for each
    # decision, minus what its calls cost (decisions from before migration 7 have no figures).
    by_creator = ledger.frame(
        """
        SELECT coalesce(c.name, '(prompts and questions)') AS creator, count(*) AS jobs,
               sum(d.cloud_usd) AS cloud_usd, sum(d.energy_usd) AS energy_usd,
               sum(d.all_cloud_usd) AS all_cloud_usd,
               sum(d.all_cloud_usd - d.cloud_usd - d.energy_usd) AS savings_usd
        FROM routing_decisions d
        LEFT JOIN videos v USING (video_id)
        LEFT JOIN creators c ON c.channel_id = v.channel_id
        WHERE d.all_cloud_usd IS NOT NULL AND (? = 'all' OR c.name = ?)
        GROUP BY ALL ORDER BY savings_usd DESC
        """,
        [creator.value, creator.value],
    )
    by_model = ledger.frame(
        """
        SELECT l.model, l.provider, count(*) AS calls, sum(l.cost_usd) AS cloud_usd,
               sum(l.energy_usd) AS energy_usd
        FROM llm_calls l
        LEFT JOIN videos v USING (video_id)
        LEFT JOIN creators c ON c.channel_id = v.channel_id
        WHERE (? = 'all' OR c.name = ?) AND (? = 'all' OR l.model = ?)
        GROUP BY ALL ORDER BY cloud_usd DESC
        """,
        [creator.value, creator.value, model.value, model.value],
    )
    mo.vstack(
        [
            mo.md("## Savings by creator (all time, per job, before the GPU's idle draw)"),
            mo.ui.table(by_creator),
            mo.md("## Calls by model (all time)"),
            mo.ui.table(by_model),
        ]
    )
    return


if __name__ == "__main__":
    app.run()
