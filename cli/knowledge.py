"""`kb show`, `kb search`, `kb tools`, `kb topics`, `kb digest`, `kb export` and
`kb fetch --segments`: reading the knowledge base.

Commands that only read open the ledger read-only for a moment and never start Prefect (nor
import it, unless PREFECT_API_URL says saved blocks should be read), so they are quick and
never hold up the pipeline. `kb digest` and `kb fetch --segments` run their flows.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import duckdb
import typer
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from cli.common import configured, console, fail, flow_server, kb_settings, run
from creatorkb.errors import KBError, LedgerLocked
from creatorkb.fts import load_fts, require_knowledge_schema
from creatorkb.lake import SEARCH_NOT_ON_LAKE
from creatorkb.ledger import Ledger
from creatorkb.segments import clock
from creatorkb.settings import CostOptions, KnowledgeOptions, OllamaOptions

T = TypeVar("T")
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only videos published on or after, e.g. 2026-11-01.")
]
CreatorOption = Annotated[
    str | None, typer.Option("--creator", help="Only this creator (name, @handle or channel id).")
]
CALL_WRITE_WAIT_S = 2.0  # a search's embedding call waits this long for the ledger, then spools


def register(app: typer.Typer) -> None:
    """Add the knowledge commands to `kb`."""
    app.command()(show)
    app.command()(search)
    app.command()(tools)
    app.command()(topics)
    app.command()(digest)
    app.command("export")(export_command)
    app.command()(ask)


# -- shared ----------------------------------------------------------------------


def _reading(action: Callable[[duckdb.DuckDBPyConnection], T], *, full_text: bool = False) -> T:
    """Run `action` on a short read-only connection to the ledger; errors as one line."""

    def read() -> T:
        settings = kb_settings()
        ledger = Ledger(settings.ledger, settings.ledger_wait_seconds)
        if full_text and not ledger.keeps_search_index:
            raise KBError(SEARCH_NOT_ON_LAKE)
        with ledger.reading() as connection:
            require_knowledge_schema(connection, ledger.path)
            if full_text:
                load_fts(connection)
            return action(connection)

    return run(read)


def _say(text: str, style: str = "") -> None:
    """Print text that may come from a video (never read as markup)."""
    console.print(escape(text), style=style, highlight=False, soft_wrap=True)


def _since(text: str | None) -> date | None:
    from creatorkb.knowledge import parse_date

    return run(lambda: parse_date(text)) if text is not None else None


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# -- kb show ---------------------------------------------------------------------


def show(
    video: Annotated[str, typer.Argument(help="The video's id (the v= part of its link).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """One video's record: what it taught, with timestamp links, and what it cost."""
    from creatorkb.knowledge import read_record

    record = _reading(lambda connection: read_record(connection, video.strip()))
    if as_json:
        _print_json(record.to_json())
        return
    published = record.published_at.date().isoformat() if record.published_at else "undated"
    _say(record.title or record.video_id, "bold")
    _say(f"{record.creator or record.channel_id} · published {published} · {record.link}")
    _say("\nSummary", "bold")
    _say(f"  {record.summary}")
    _say("\nKey points", "bold")
    for point in record.key_points:
        _say(f"  • {point.text}  {point.at} {point.link if point.start_s is not None else ''}")
    if record.techniques:
        _say("\nTechniques", "bold")
        for technique in record.techniques:
            _say(f"  {technique.name}")
            for number, step in enumerate(technique.steps, start=1):
                link = step.link if step.start_s is not None else ""
                _say(f"    {number}. {step.text}  {step.at} {link}")
    if record.tools:
        _say("\nTools", "bold")
        for tool in record.tools:
            link = tool.quote.link if tool.quote.start_s is not None else ""
            _say(f'  {tool.name}: "{tool.quote.text}"  {tool.quote.at} {link}')
    _say("\nQuotes", "bold")
    for quote in record.evidence_quotes:
        link = quote.link if quote.start_s is not None else ""
        _say(f'  "{quote.text}"  {quote.at} {link}')
    _say(f"\nTopics      {', '.join(record.topics) or '-'}")
    _say(f"Relevance   {record.relevance:.2f}")
    parts = ", ".join(
        f"{name} {value:.2f}" if isinstance(value, float) else f"{name} {value}"
        for name, value in record.components.items()
    )
    confidence = f"{record.confidence:.2f}" if record.confidence is not None else "n/a"
    _say(f"Confidence  {confidence}" + (f" ({parts})" if parts else ""))
    flagged = " (flagged: the cloud did not check it)" if record.flagged else ""
    _say(f"Route       {record.route or '-'}: {record.reason or ''}{flagged}")
    _say(f"Model       {record.model} ({record.final_tier})")
    cost = record.cost
    _say(
        f"Cost        cloud ${cost.cloud_usd:.6f} · energy {cost.energy_kwh:.6f} kWh "
        f"(${cost.energy_usd:.6f}) · {cost.calls} model calls"
    )


# -- kb search -------------------------------------------------------------------


def search(
    query: Annotated[str, typer.Argument(help="What to look for, in a few words.")],
    creator: CreatorOption = None,
    topic: Annotated[str | None, typer.Option(help="Only videos on this topic.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only videos naming this tool.")] = None,
    since: SinceOption = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Most hits to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Search what the videos taught (full text and meaning); each hit links to its moment."""
    from creatorkb import search as searching
    from creatorkb.embeddings import Embedder

    filters = searching.Filters(creator=creator, topic=topic, tool=tool, since=_since(since))
    knowledge = configured(KnowledgeOptions)
    embedder = Embedder(configured(OllamaOptions), knowledge)
    settings = kb_settings()
    ledger = Ledger(settings.ledger, settings.ledger_wait_seconds)
    found = run(lambda: searching.find(ledger, query, filters, knowledge, embedder, limit=limit))
    record_calls(found.calls)
    result, hits, text = found.result, found.result.hits, found.result.query
    semantic_off, notes = result.semantic_off, result.notes
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    ranking = "full text + semantic" if result.semantic else "full text only"
    console.print(f"{len(hits)} hits for [bold]{escape(text)}[/] ({ranking})", highlight=False)
    for number, hit in enumerate(hits, start=1):
        where = hit.link if hit.start_s is not None else f"{hit.link} (unlocated)"
        label = f" {hit.label}" if hit.label and hit.kind == "step" else ""
        _say(
            f"{number:>2}. {hit.title or hit.video_id} — {hit.creator or hit.channel_id} · "
            f"{hit.kind}{label} · {hit.at}  {where}",
            "bold",
        )
        _say(f"    {hit.text}")
    if not hits:
        _say("no passage matches; try other words or fewer filters")
    if semantic_off:
        _say(
            f"semantic ranking is off: {semantic_off}; hits are ranked by full text only", "yellow"
        )
    for note in notes:
        _say(note, "dim")


def record_calls(calls: list[Any]) -> None:
    """The query's embedding calls into llm_calls; spooled for the next writer if the ledger
    is busy (a search never waits long for the pipeline)."""
    if not calls:
        return
    from creatorkb.recording import call_writes

    writes = call_writes(
        calls, configured(CostOptions), flow_run_id=None, video_id=None, decision_id=None
    )
    settings = kb_settings()
    ledger = Ledger(settings.ledger, min(settings.ledger_wait_seconds, CALL_WRITE_WAIT_S))
    with contextlib.suppress(LedgerLocked):  # spooled beside the ledger for the next writer
        ledger.write(*writes)


# -- kb ask ----------------------------------------------------------------------


def ask(
    question: Annotated[str, typer.Argument(help="What you want to know, in a sentence.")],
    creator: CreatorOption = None,
    since: SinceOption = None,
    prefer_local: Annotated[bool, typer.Option(help="Start locally whatever the policy.")] = False,
    force_cloud: Annotated[bool, typer.Option(help="Send it to Claude.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Ask the knowledge base (the ask flow): an answer citing the videos' moments."""
    if prefer_local and force_cloud:
        fail("give at most one of --prefer-local and --force-cloud")
    from creatorkb import search as searching

    text = run(lambda: searching.check_query(question))
    start = _since(since)
    flow_server()
    from flows.ask import ask as ask_flow

    answer = run(
        lambda: ask_flow(
            text, creator=creator, since=start, prefer_local=prefer_local, force_cloud=force_cloud
        )
    )
    if as_json:
        _print_json(answer.model_dump(mode="json"))
        return
    print_answer(answer)


def print_answer(answer: Any) -> None:
    """An answer, its sources with their links, and where it came from."""
    _say(answer.text)
    if answer.citations:
        _say("\nSources", "bold")
    for citation in answer.citations:
        at = f" at {clock(citation.start_s)}" if citation.start_s is not None else ""
        _say(f"  [{citation.n}] {citation.title or citation.video_id}{at}  {citation.link}")
    via = f"{answer.route} via {answer.provider} {answer.model}" if answer.route else "no model"
    console.print(f"[dim]{escape(via)}, cloud ${answer.cost_usd:.6f}[/]", highlight=False)


# -- kb tools / kb topics --------------------------------------------------------


def _usage_table(
    kind: Literal["tool", "technique", "topic"], since: str | None, creator: str | None
):
    from creatorkb.knowledge import require_analyses, resolve_creator
    from creatorkb.mentions import Names, read_mentions, usage

    start = _since(since)
    names = Names(configured(KnowledgeOptions).aliases)

    def read(connection: duckdb.DuckDBPyConnection) -> list[Any]:
        require_analyses(connection)
        channels = resolve_creator(connection, creator) if creator else None
        return usage(read_mentions(connection, kind, since=start, channel_ids=channels), names)

    return _reading(read)


def _print_usage(title: str, items: list[Any]) -> None:
    table = Table("name", "videos", "creators", "first", "last", "videos naming it", title=title)
    for item in items:
        shown = "; ".join(item.titles[:3]) + (
            f"; +{len(item.titles) - 3}" if item.videos > 3 else ""
        )
        table.add_row(
            escape(item.name),
            str(item.videos),
            str(item.creators),
            item.first.isoformat(),
            item.last.isoformat(),
            escape(shown),
        )
    console.print(table)


def tools(
    since: SinceOption = None,
    creator: CreatorOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """The tools and techniques the videos name, counted across videos and creators."""
    found = {kind: _usage_table(kind, since, creator) for kind in ("tool", "technique")}
    if as_json:
        _print_json(
            {f"{kind}s": [i.model_dump(mode="json") for i in v] for kind, v in found.items()}
        )
        return
    _print_usage(f"Tools ({len(found['tool'])})", found["tool"])
    _print_usage(f"Techniques ({len(found['technique'])})", found["technique"])


def topics(
    since: SinceOption = None,
    creator: CreatorOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """The topics of the analysed videos, counted across videos and creators."""
    found = _usage_table("topic", since, creator)
    if as_json:
        _print_json([item.model_dump(mode="json") for item in found])
        return
    _print_usage(f"Topics ({len(found)})", found)


# -- kb digest -------------------------------------------------------------------


def digest(
    week: Annotated[
        str | None, typer.Option(help="ISO week, e.g. 2026-W49 (default: the last complete one).")
    ] = None,
) -> None:
    """The weekly knowledge digest (a flow run): printed, and written to reports/."""
    from creatorkb.report import IsoWeek

    if week is not None:
        run(lambda: IsoWeek.parse(week))  # a clear error before any flow starts
    flow_server()
    from flows.digest import knowledge_digest

    result = run(lambda: knowledge_digest(week=week))
    console.print(Markdown(result.to_markdown()))
    path = (kb_settings().reports / f"digest-{result.week}.md").resolve()
    console.print(f"[dim]written to {escape(str(path))}[/]")


# -- kb export -------------------------------------------------------------------


def export_command(
    directory: Annotated[Path, typer.Argument(help="Where to write (created if missing).")],
    fmt: Annotated[
        str, typer.Option("--format", help="obsidian (a vault of notes) or jsonl.")
    ] = "obsidian",
) -> None:
    """Export the knowledge base: an Obsidian vault, or one JSON record per line."""
    from creatorkb.export import export
    from creatorkb.knowledge import read_records, require_analyses
    from creatorkb.mentions import Names

    if fmt not in ("obsidian", "jsonl"):
        fail(f"--format {fmt!r} is not a format kb exports; use obsidian or jsonl")

    def read(connection: duckdb.DuckDBPyConnection) -> list[Any]:
        require_analyses(connection)
        return read_records(connection)

    records = _reading(read)
    names = Names(configured(KnowledgeOptions).aliases)
    report = run(lambda: export(records, directory, fmt, names))  # type: ignore[arg-type]
    console.print(f"exported {len(records)} videos as {fmt} to {escape(report.describe())}")


# -- kb fetch --segments ---------------------------------------------------------


def fetch_segments(limit: int) -> None:
    """Snippet timings for transcribed videos stored without them (the fetch-segments flow)."""
    from flows.segments import fetch_segments as fetch_segments_flow

    summary = run(lambda: fetch_segments_flow(limit=limit))
    table = Table("attempted", "timings stored", "failed", "not attempted")
    table.add_row(
        str(summary.attempted),
        str(summary.stored),
        str(summary.attempted - summary.stored),
        str(summary.not_attempted),
    )
    console.print(table)
    for reason, count in summary.failures_by_reason.items():
        console.print(f"  {count:4d}  {escape(reason)}")
    if summary.breaker_opened:
        console.print("[yellow]circuit breaker opened[/]: the rest is tried on a later run")
