"""The `kb` command line: set up, manage creators, run the flows, check the setup."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markdown import Markdown
from rich.table import Table

from cli import knowledge, prefect_api
from cli.common import (
    configured,
    console,
    fail,
    flow_server,
    holder_liveness,
    kb_settings,
    prefect_server,
    run,
)
from creatorkb.channels import ChannelRef, ResolvedChannel, parse_channel_ref, resolve_channel
from creatorkb.errors import PrefectUnavailable
from creatorkb.ledger import Ledger, open_ledger
from creatorkb.liveness import Liveness
from creatorkb.network import http_client
from creatorkb.roster import (
    Creator,
    CreatorEdit,
    Priority,
    add_or_update,
    find_creator,
    load_roster,
    merge,
    parse_import,
    save_roster,
    with_channel_id,
)
from creatorkb.routing import Level, RoutingPolicy
from creatorkb.settings import (
    AnthropicOptions,
    CostOptions,
    KBSettings,
    OllamaOptions,
    YouTubeOptions,
)

if TYPE_CHECKING:  # the flows' modules load the model clients: only commands that run need them
    from creatorkb.analysis import AnalysisSummary
    from creatorkb.catalog import FetchSummary, ScanSummary

app = typer.Typer(
    help="Creator knowledge base: scan YouTube creators, fetch transcripts, analyse them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
creators_app = typer.Typer(help="The creators roster.", no_args_is_help=True)
app.add_typer(creators_app, name="creators")
ledger_app = typer.Typer(help="The ledger file itself.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@app.callback()
def _prepare() -> None:
    prefect_api.prepare_environment()


EXAMPLE_ROSTER = """\
# Creators to follow. priority: critical | high | medium | low
# channel_id is 'UC' + 22 characters; or give handle: "@name" to have it resolved.
creators: []
"""


@app.command()
def init() -> None:
    """Create the ledger (or migrate it) and an example roster file if there is none."""
    settings = kb_settings()
    ledger = run(lambda: open_ledger(settings.ledger, settings.ledger_wait_seconds))
    console.print(f"ledger  {ledger.path}  (schema version {ledger.schema_version()})")
    if settings.creators.exists():
        console.print(f"roster  {settings.creators}  (exists, {len(_roster(settings))} creators)")
    else:
        settings.creators.parent.mkdir(parents=True, exist_ok=True)
        settings.creators.write_text(EXAMPLE_ROSTER, encoding="utf-8")
        console.print(f"roster  {settings.creators}  (created)")
    console.print("next: `kb creators add @handle --priority high`, then `kb scan`")


def _roster(settings: KBSettings) -> list[Creator]:
    if not settings.creators.exists():
        return []
    return run(lambda: load_roster(settings.creators))


def _resolve(creators: list[Creator]) -> list[Creator]:
    """Give every creator added by @handle or URL its channel id, read from its page."""
    unresolved = [creator for creator in creators if creator.channel_id is None]
    if not unresolved:
        return creators
    options = configured(YouTubeOptions)
    proxy = options.proxy_url.get_secret_value() if options.proxy_url else None
    with http_client(proxy) as client:
        return [run(lambda c=creator: with_channel_id(c, client)) for creator in creators]


@ledger_app.command("convert")
def ledger_convert() -> None:
    """Convert a ledger written by DuckDB 2.0 (kb before December 2026) to this kb's DuckDB."""
    from creatorkb import storage

    settings = kb_settings()
    counts = run(lambda: storage.convert(settings.ledger.resolve()))
    rows = sum(counts.values())
    console.print(
        f"converted {settings.ledger}: {len(counts)} tables, {rows:,} rows, every count checked; "
        f"the original is kept as {settings.ledger.name}.duckdb2"
    )


@app.command()
def status() -> None:
    """Videos by status, and the videos waiting on a Message Batch (batch id and age)."""
    from creatorkb.batches import WaitingVideo, waiting_videos

    settings = kb_settings()

    def read() -> tuple[list[dict[str, object]], list[WaitingVideo]]:
        ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
        counts = ledger.rows("SELECT status, count(*) AS n FROM videos GROUP BY 1 ORDER BY 1")
        return counts, waiting_videos(ledger)

    counts, waiting = run(read)
    table = Table("status", "videos")
    for row in counts:
        table.add_row(str(row["status"]), str(row["n"]))
    console.print(table if counts else "no videos yet: `kb scan` finds them")
    if not waiting:
        console.print("no video is waiting on a Message Batch")
        return
    console.print(f"{len(waiting)} video(s) waiting on a Message Batch:")
    batches = Table("video", "batch", "item", "step", "age (h)")
    for w in waiting:
        batch = w.batch_id or "not sent yet"
        batches.add_row(
            w.video_id,
            f"{batch} ({w.status})",
            w.custom_id,
            f"{w.purpose} by {w.model}",
            f"{w.age_hours:.2f}",
        )
    console.print(batches)


@ledger_app.command("migrate-to")
def ledger_migrate_to(
    url: Annotated[str, typer.Argument(help="The lake: ducklake:postgres:host=... dbname=kb")],
    data_path: Annotated[
        str | None,
        typer.Option(help="Where the lake keeps its data files (default KB_LEDGER_DATA_PATH)."),
    ] = None,
) -> None:
    """Copy the file ledger (KB_LEDGER) into a new DuckLake, checked row for row."""
    from creatorkb.lake import is_lake, migrate_to, redacted

    settings = kb_settings()
    if is_lake(settings.ledger) or not settings.ledger.exists():
        fail(f"no ledger file at {settings.ledger}; set KB_LEDGER to the file to copy")
    counts = run(lambda: migrate_to(settings.ledger.resolve(), url, data_path))
    console.print(
        f"copied {settings.ledger} into {redacted(url)}: {len(counts)} tables, "
        f"{sum(counts.values()):,} rows, every row checked. Point KB_LEDGER at the lake "
        "(and KB_LEDGER_DATA_PATH at its data) on every machine.",
        highlight=False,
    )


def judged_holders() -> Liveness:
    """Which holders of sent calls are gone: by the Prefect server kb uses, when one runs."""
    return holder_liveness(prefect_server())


@ledger_app.command("unanswered")
def ledger_unanswered() -> None:
    """Cloud calls sent whose answer never came back: possibly billed, counted by the budget."""
    from creatorkb.budget import unanswered

    settings = kb_settings()
    ledger, liveness = Ledger(settings.ledger, settings.ledger_wait_seconds), judged_holders()
    rows = run(lambda: unanswered(ledger, liveness))
    table = Table("sent", "model", "purpose", "bound")
    table.add_column("reservation", no_wrap=True)  # to be copied whole into `kb ledger settle`
    for row in rows:
        table.add_row(
            f"{row['sent_at']:%Y-%m-%d %H:%M} UTC",
            row["model"] or "",
            row["purpose"] or "",
            f"${row['amount_usd']:.6f}",
            row["reservation_id"],
        )
    console.print(table if rows else "no cloud call is waiting on an answer that never came")


@ledger_app.command("settle")
def ledger_settle(
    reservation: Annotated[str, typer.Argument(help="From `kb ledger unanswered`.")],
    usd: Annotated[
        str | None, typer.Option(help="What Anthropic's usage shows it cost, e.g. 0.0052.")
    ] = None,
    not_billed: Annotated[bool, typer.Option(help="Anthropic did not bill it.")] = False,
) -> None:
    """Settle a possibly billed call once its usage is known (or say it was not billed)."""
    from creatorkb.budget import settle_unanswered

    if (usd is None) == (not not_billed):
        fail("give exactly one of --usd and --not-billed")
    try:
        billed = None if usd is None else Decimal(usd)
    except ArithmeticError:
        fail(f"--usd {usd!r} is not an amount; write it like 0.0052")
    settings = kb_settings()
    ledger, liveness = Ledger(settings.ledger, settings.ledger_wait_seconds), judged_holders()
    run(lambda: settle_unanswered(ledger, reservation, billed, liveness))
    console.print(
        f"settled {reservation}: "
        + ("not billed, the reservation released" if not_billed else f"${usd} recorded")
    )


@creators_app.command("add")
def creators_add(
    channel: Annotated[str, typer.Argument(help="Channel id (UC...), @handle or channel URL.")],
    name: Annotated[
        str | None, typer.Option(help="Display name (new creators: from YouTube).")
    ] = None,
    priority: Annotated[
        Priority | None,
        typer.Option(help="Sets scan interval and routing (new creators: medium)."),
    ] = None,
    interval_days: Annotated[
        float | None, typer.Option(min=0.01, help="Scan interval override, in days.")
    ] = None,
) -> None:
    """Add a creator to the roster, or change the given fields of one already there."""
    settings = kb_settings()
    ref = run(lambda: parse_channel_ref(channel))
    handle = None if ref.channel_id else channel.strip()
    edit = CreatorEdit(name, priority, interval_days)
    roster = _roster(settings)
    position = find_creator(roster, ref.channel_id, handle)
    new = None
    if position is None:
        found = _channel_page(ref, title=name is None)
        position = find_creator(roster, found.channel_id, None)
        if position is None:
            new = run(
                lambda: Creator(
                    channel_id=found.channel_id,
                    handle=handle,
                    name=name or found.title or found.channel_id,
                    priority=priority or Priority.medium,
                    scan_interval_days=interval_days,
                )
            )
    roster, creator, changed = run(lambda: add_or_update(roster, position, new, edit))
    save_roster(settings.creators, roster)
    if new is not None:
        console.print(f"added {creator.label}, priority {creator.priority}, to {settings.creators}")
    elif changed:
        console.print(f"updated {creator.label}: {'; '.join(changed)}")
    else:
        console.print(f"{creator.label} already has these settings; nothing changed")


def _channel_page(ref: ChannelRef, *, title: bool) -> ResolvedChannel:
    """The channel's id and, when wanted, its title, read from its YouTube page."""
    if ref.channel_id and not title:
        return ResolvedChannel(ref.channel_id)  # nothing to look up
    options = configured(YouTubeOptions)
    proxy = options.proxy_url.get_secret_value() if options.proxy_url else None
    with http_client(proxy) as client:
        return run(lambda: resolve_channel(ref, client, title=title))


@creators_app.command("import")
def creators_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML roster or CSV.")],
) -> None:
    """Merge creators from a roster YAML or a CSV (columns: channel, name, priority)."""
    settings = kb_settings()
    incoming = run(lambda: parse_import(path.read_text(encoding="utf-8"), str(path)))
    roster, added, updated = merge(_roster(settings), _resolve(incoming))
    save_roster(settings.creators, roster)
    console.print(
        f"{added} added, {updated} updated; {len(roster)} creators in {settings.creators}"
    )


@creators_app.command("list")
def creators_list() -> None:
    """The roster, with when each creator was last scanned and is next due."""
    settings = kb_settings()
    roster = _roster(settings)
    scanned = _scan_state(settings)
    table = Table("name", "channel", "priority", "every (days)", "last scanned", "videos", "due")
    now = datetime.now(UTC)
    for creator in roster:
        last, videos = scanned.get(creator.channel_id or "", (None, 0))
        table.add_row(
            creator.name,
            creator.channel_id or f"{creator.handle} (unresolved)",
            creator.priority.value,
            f"{creator.scan_interval.total_seconds() / 86400:g}",
            last.strftime("%Y-%m-%d %H:%M") if last else "never",
            str(videos),
            "yes" if creator.is_due(last, now) else "no",
        )
    console.print(table)
    console.print(f"{len(roster)} creators in {settings.creators}")


def _scan_state(settings: KBSettings) -> dict[str, tuple[datetime | None, int]]:
    if not settings.ledger_exists:
        return {}
    ledger = Ledger(settings.ledger, settings.ledger_wait_seconds)
    rows = run(
        lambda: ledger.rows(
            "SELECT c.channel_id, c.last_scanned_at, count(v.video_id) AS videos "
            "FROM creators c LEFT JOIN videos v USING (channel_id) GROUP BY ALL"
        )
    )
    return {row["channel_id"]: (row["last_scanned_at"], row["videos"]) for row in rows}


@app.command()
def scan(
    channel: Annotated[
        list[str] | None, typer.Option(help="Scan only these channel ids (repeatable).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Scan even creators that are not due.")] = False,
) -> None:
    """Read the feeds of creators due for a scan and record new videos."""
    flow_server()
    from flows.scan import scan_creators

    _print_scan(run(lambda: scan_creators(channel_ids=channel or None, force=force)))


@app.command()
def fetch(
    limit: Annotated[int, typer.Option(min=1, help="Most videos to try this run.")] = 200,
    language: Annotated[
        list[str] | None, typer.Option(help="Preferred transcript languages (repeatable).")
    ] = None,
    segments: Annotated[
        bool, typer.Option(help="Only snippet timings of transcripts stored without them.")
    ] = False,
) -> None:
    """Fetch transcripts of discovered videos."""
    flow_server()
    if segments:
        return knowledge.fetch_segments(limit)
    from flows.fetch import fetch_transcripts

    _print_fetch(run(lambda: fetch_transcripts(limit=limit, languages=language or None)))


@app.command()
def analyze(
    limit: Annotated[int, typer.Option(min=1, help="Most videos to analyse this run.")] = 100,
    video: Annotated[
        list[str] | None, typer.Option(help="Analyse only these video ids (repeatable).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Analyse (and pay for) already analysed videos again.")
    ] = False,
) -> None:
    """Analyse transcribed videos: local draft, confidence check, cloud refine."""
    flow_server()
    from flows.analyze import analyze_videos

    _print_analysis(run(lambda: analyze_videos(limit=limit, video_ids=video or None, force=force)))


@app.command("run")
def run_pipeline(
    force_scan: Annotated[bool, typer.Option(help="Scan every creator, due or not.")] = False,
    fetch_limit: Annotated[int, typer.Option(min=1, help="Most transcripts to fetch.")] = 200,
    analyze_limit: Annotated[int, typer.Option(min=1, help="Most videos to analyse.")] = 200,
) -> None:
    """The pipeline: scan creators, fetch transcripts, analyse them."""
    flow_server()
    from flows.pipeline import pipeline

    summary = run(
        lambda: pipeline(
            force_scan=force_scan, fetch_limit=fetch_limit, analyze_limit=analyze_limit
        )
    )
    _print_scan(summary.scan)
    _print_fetch(summary.fetch)
    _print_analysis(summary.analysis)


@app.command()
def prompt(
    text: Annotated[str, typer.Argument(help="The prompt.")],
    level: Annotated[
        Level, typer.Option(help="Agent level: L1 goes to the cloud, L2/L3 start locally.")
    ] = Level.L2,
    prefer_local: Annotated[bool, typer.Option(help="Start locally whatever the level.")] = False,
    force_cloud: Annotated[bool, typer.Option(help="Send it to Claude.")] = False,
) -> None:
    """One routed generation (the route-prompt flow); prints the answer."""
    flow_server()
    from flows.route_prompt import route_prompt

    result = run(
        lambda: route_prompt(text, level=level, prefer_local=prefer_local, force_cloud=force_cloud)
    )
    knowledge.print_answer(result)


@app.command("consensus")
def consensus_command(
    prompt: Annotated[str | None, typer.Option(help="A prompt for the models.")] = None,
    video: Annotated[str | None, typer.Option(help="A transcribed video's id.")] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Local models to ask (repeatable; default: all).")
    ] = None,
) -> None:
    """Several local models answer one prompt or video; prints the synthesis and agreement."""
    if (prompt is None) == (video is None):
        console.print("[bold red]error:[/] give exactly one of --prompt or --video")
        raise typer.Exit(2)
    flow_server()
    from flows.consensus import consensus

    result = run(lambda: consensus(prompt=prompt, video_id=video, models=model or None))
    console.print(result.answer, markup=False, highlight=False)
    agreement = f"{result.agreement:.2f}" if result.agreement is not None else "n/a"
    console.print(f"[dim]{result.route}, agreement {agreement}, cloud ${result.cost_usd}[/]")
    if result.reason:
        console.print(result.reason, style="dim", markup=False, highlight=False)


def _print_analysis(summary: AnalysisSummary) -> None:
    table = Table("videos", "analysed", "deferred", "failed", "flagged", "cloud $")
    table.add_row(
        str(summary.videos),
        str(summary.analyzed),
        str(summary.deferred),
        str(summary.failed),
        str(summary.flagged),
        f"{summary.cloud_usd:.4f}",
    )
    console.print(table)
    for route, count in summary.routes.items():
        console.print(f"  {count:4d}  {route}")
    if summary.batches_sent:
        console.print(f"Message Batches sent: {', '.join(summary.batches_sent)}", highlight=False)
    if summary.waiting:
        console.print(f"  {len(summary.waiting):4d}  waiting on a Message Batch (kb status)")
    for problem in summary.batch_problems:
        console.print(f"batch: {problem}", style="yellow", highlight=False, markup=False)
    for video_id, error in summary.errors.items():
        console.print(f"[red]{video_id}[/]: {error}")
    for warning in summary.warnings:
        console.print(f"[yellow]not possible this run:[/] {warning}", highlight=False)


def _print_scan(summary: ScanSummary) -> None:
    table = Table("creators due", "changed", "unchanged (304)", "failed", "new videos", "gaps")
    table.add_row(
        str(summary.creators_due),
        str(summary.feeds_changed),
        str(summary.feeds_unchanged),
        str(len(summary.failures)),
        str(summary.new_videos),
        str(len(summary.possible_gaps)),
    )
    console.print(table)
    for channel_id, problem in {**summary.failures, **summary.unresolved}.items():
        console.print(f"[yellow]{channel_id}[/]: {problem} (left for the next scan)")


def _print_fetch(summary: FetchSummary) -> None:
    table = Table("attempted", "transcripts stored", "failed", "not attempted")
    table.add_row(
        str(summary.attempted),
        str(summary.transcribed),
        str(summary.attempted - summary.transcribed),
        str(summary.not_attempted),
    )
    console.print(table)
    for reason, count in summary.failures_by_reason.items():
        console.print(f"  {count:4d}  {reason}")
    if summary.breaker_opened:
        console.print(
            "[yellow]circuit breaker opened[/]: YouTube blocked consecutive requests; the rest "
            "is tried on a later run"
        )


@app.command()
def report(
    week: Annotated[
        str | None, typer.Option(help="ISO week, e.g. 2026-W47 (default: the last complete one).")
    ] = None,
) -> None:
    """The weekly cost report: a markdown summary here, HTML under reports/, a ledger row."""
    from creatorkb.report import IsoWeek

    if week is not None:
        run(lambda: IsoWeek.parse(week))  # a clear error before any flow starts
    flow_server()
    from flows.report import weekly_cost_report

    result = run(lambda: weekly_cost_report(week=week))
    console.print(Markdown(result.to_markdown()))
    settings = kb_settings()
    console.print(f"[dim]HTML: {(settings.reports / f'{result.week}.html').resolve()}[/]")


@app.command()
def calibrate() -> None:
    """From the shadow reviews: how precise local accepts are, and the accept threshold that
    reaches the policy's target precision."""
    from creatorkb.calibration import calibrate as calibrated

    settings = kb_settings()
    policy = configured(RoutingPolicy)
    ledger = Ledger(settings.ledger, settings.ledger_wait_seconds)
    found = run(lambda: calibrated(ledger, policy))
    console.print(found.describe(), highlight=False)
    if found.recommended is not None and found.recommended != policy.accept_threshold:
        console.print(
            f"to apply it: KB_POLICY_ACCEPT_THRESHOLD={found.recommended:g} (or the "
            "routing-policy block's accept_threshold)",
            highlight=False,
        )


@app.command()
def up(
    host: Annotated[
        str, typer.Option(help="Address to listen on. Keep 127.0.0.1 unless you set up auth.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the API and UI.")] = 4200,
) -> None:
    """Start a Prefect server with its UI and serve every deployment on its schedule."""
    from cli.up import run_up

    raise typer.Exit(run_up(console, host, port, prefect_api.project_home()))


def _long_lived_server() -> str:
    """The Prefect API of `kb up` or PREFECT_API_URL: a work pool and its workers need a
    server that outlives one command."""
    api = prefect_server()
    if api.url is None:
        fail(
            "workers need a long-lived Prefect server: start `kb up` here, or set "
            "PREFECT_API_URL to the shared server (see docs/scaling.md)"
        )
    return api.url


@app.command()
def deploy(
    pool: Annotated[str, typer.Option(help="The process work pool (created if missing).")] = "kb",
) -> None:
    """Put every deployment of prefect.yaml on a work pool, for workers on any machine."""
    url = _long_lived_server()
    from deployments.pool import deploy as deploy_to_pool

    for name in run(lambda: deploy_to_pool(pool)):
        console.print(f"deployed  {name:<22} on work pool {pool}", highlight=False)
    console.print(f"start workers with: kb worker --pool {pool}   (PREFECT_API_URL={url})")


@app.command()
def worker(
    pool: Annotated[str, typer.Option(help="The work pool to take flow runs from.")] = "kb",
    limit: Annotated[
        int | None, typer.Option(min=1, help="Most flow runs this worker runs at once.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The worker's name in the UI.")] = None,
) -> None:
    """Run flow runs of a work pool on this machine (`prefect worker start --pool POOL`)."""
    import os
    import sys

    _long_lived_server()
    command = [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool]
    command += ["--type", "process"]
    command += ["--limit", str(limit)] if limit else []
    command += ["--name", name] if name else []
    os.execv(command[0], command)


@app.command()
def doctor() -> None:
    """What is configured and reachable: ledger, roster, YouTube, models, budget, Prefect."""
    from cli.doctor import Configuration, prefect_check, run_checks

    try:
        api: prefect_api.PrefectApi | None = prefect_api.discover()
    except PrefectUnavailable as error:
        api, problem = None, str(error)
    else:
        problem = None
    use_blocks = api is not None and api.url is not None  # else the environment's settings
    config = Configuration(
        settings=kb_settings(),
        liveness=holder_liveness(api),
        youtube=configured(YouTubeOptions, use_blocks),
        ollama=configured(OllamaOptions, use_blocks),
        anthropic=configured(AnthropicOptions, use_blocks),
        policy=configured(RoutingPolicy, use_blocks),
        costs=configured(CostOptions, use_blocks),
    )
    raise typer.Exit(run_checks(console, config, prefect_check(api, problem)))


knowledge.register(app)

if __name__ == "__main__":
    app()
