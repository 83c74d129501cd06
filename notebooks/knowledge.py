"""The knowledge base: tools over time, topics by creator, costly and useful videos, search.

Open it with `.venv/bin/marimo edit notebooks/knowledge.py`. Like the ROI notebook it never
holds the pipeline's ledger: it queries a copy in memory (`Ledger.copy_in_memory`) taken when
it starts.
Its search box ranks by full text: asking Ollama for the query's embedding would be a model
call, and a notebook records none (`kb search` adds the semantic ranking, and records it).
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import os
    from collections import Counter
    from pathlib import Path

    import marimo as mo
    from matplotlib.figure import Figure

    from creatorkb import search
    from creatorkb.configuration import from_environment
    from creatorkb.fts import load_fts
    from creatorkb.ledger import Ledger
    from creatorkb.mentions import Names, read_mentions, usage
    from creatorkb.settings import KnowledgeOptions

    return (
        Counter,
        Figure,
        KnowledgeOptions,
        Ledger,
        Names,
        Path,
        from_environment,
        load_fts,
        mo,
        os,
        read_mentions,
        search,
        usage,
    )


@app.cell
def _(KnowledgeOptions, Ledger, Names, Path, from_environment, load_fts, mo, os):
    source = Ledger(Path(os.environ.get("KB_LEDGER", "data/kb.duckdb")))
    connection = source.copy_in_memory().connection
    connection.execute("SET TimeZone = 'UTC'")
    load_fts(connection)
    names = Names(from_environment(KnowledgeOptions).aliases)
    [(videos,)] = connection.execute("SELECT count(*) FROM analyses").fetchall()
    # source.path names a lake without its password (the page may be shared).
    mo.md(f"Reading a copy of `{source.path}` taken just now: **{videos}** analysed videos.")
    return connection, names


@app.cell
def _(Counter, Figure, connection, mo, names, read_mentions, usage):
    mentions = read_mentions(connection, "tool")
    top = [item for item in usage(mentions, names)][:6]
    weeks = sorted({f"{m.said_at:%G-W%V}" for m in mentions})
    figure = Figure(figsize=(7, 3))
    axes = figure.subplots()
    for item in top:
        counts = Counter(f"{m.said_at:%G-W%V}" for m in mentions if names.key(m.name) == item.key)
        axes.plot(weeks, [counts.get(week, 0) for week in weeks], marker="o", label=item.name)
    axes.set_title("Videos naming each tool, by week published")
    if top:
        axes.legend()
    figure.autofmt_xdate()
    mo.vstack([mo.md("## Tools over time"), figure, mo.md(", ".join(i.name for i in top))])
    return


@app.cell
def _(connection, mo, names, read_mentions, usage):
    rows = []
    creators = connection.execute(
        "SELECT DISTINCT v.channel_id, coalesce(c.name, v.channel_id) FROM analyses a "
        "JOIN videos v USING (video_id) LEFT JOIN creators c USING (channel_id) ORDER BY 2"
    ).fetchall()
    for channel_id, creator in creators:
        found = read_mentions(connection, "topic", channel_ids=[channel_id])
        rows += [
            {"creator": creator, "topic": item.name, "videos": item.videos}
            for item in usage(found, names)
        ]
    mo.vstack([mo.md("## Topics by creator"), mo.ui.table(rows, selection=None)])
    return


@app.cell
def _(connection, mo):
    costliest = connection.execute(
        """
        SELECT v.title, coalesce(c.name, v.channel_id) AS creator,
               sum(l.cost_usd) AS cloud_usd, sum(l.energy_usd) AS energy_usd,
               sum(l.cost_usd + l.energy_usd) AS total_usd, count(*) AS calls
        FROM llm_calls l JOIN videos v USING (video_id)
        LEFT JOIN creators c ON c.channel_id = v.channel_id
        GROUP BY ALL ORDER BY total_usd DESC, v.title LIMIT 10
        """
    ).df()
    useful = connection.execute(
        """
        SELECT v.title, coalesce(c.name, v.channel_id) AS creator,
               CAST(a.result ->> 'relevance' AS DOUBLE) AS relevance, a.confidence,
               a.final_tier AS tier
        FROM analyses a JOIN videos v USING (video_id)
        LEFT JOIN creators c ON c.channel_id = v.channel_id
        ORDER BY relevance DESC, v.title LIMIT 10
        """
    ).df()
    mo.vstack(
        [
            mo.md("## The costliest videos (cloud and energy)"),
            mo.ui.table(costliest, selection=None),
            mo.md("## The most useful videos (relevance)"),
            mo.ui.table(useful, selection=None),
        ]
    )
    return


@app.cell
def _(mo, os):
    query = mo.ui.text(
        value=os.environ.get("KB_NOTEBOOK_QUERY", ""), label="Search the knowledge base"
    )
    mo.output.replace(query)
    return (query,)


@app.cell
def _(connection, mo, names, query, search):
    if not query.value.strip():
        shown = mo.md("Type a few words to search summaries, key points, tools and transcripts.")
    else:
        text = search.check_query(query.value)
        scope = search.prepare(connection, search.Filters(), names, "")
        hits = search.search(connection, text, scope, limit=10, vector=None, model="")
        shown = mo.ui.table(
            [
                {
                    "video": hit.title,
                    "creator": hit.creator,
                    "kind": hit.kind,
                    "passage": hit.text,
                    "at": hit.at,
                    "link": hit.link,
                }
                for hit in hits
            ],
            selection=None,
        )
    mo.vstack([mo.md(f"## Search: {query.value}"), shown])
    return


if __name__ == "__main__":
    app.run()
