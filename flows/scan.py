"""Scan creators: read each due creator's channel feed and record the new videos."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from blocks import load_options
from creatorkb.catalog import (
    CreatorState,
    ScanResult,
    ScanSummary,
    assess_read,
    creator_states,
    due_for_scan,
    known_videos,
    resolved_handles,
    roster_writes,
    scan_writes,
)
from creatorkb.errors import KBError
from creatorkb.feed import FeedRead, FeedReader, page_uploads
from creatorkb.ledger import Ledger, open_ledger
from creatorkb.network import http_client
from creatorkb.roster import Creator, load_roster, with_channel_id
from creatorkb.settings import KBSettings, YouTubeOptions
from flows.progress import RunProgress


@task(name="load-roster", cache_policy=NONE)
def load_creators(
    settings: KBSettings, ledger: Ledger, proxy: str | None
) -> tuple[list[Creator], dict[str, str]]:
    """The roster with handles resolved (once: the ledger remembers), mirrored in the ledger."""
    known = resolved_handles(creator_states(ledger).values())
    creators, unresolved = [], {}
    with http_client(proxy) as client:
        for creator in load_roster(settings.creators):
            try:
                creators.append(with_channel_id(creator, client, known))
            except KBError as error:
                get_run_logger().warning("Skipping %s: %s", creator.label, error)
                unresolved[creator.label] = str(error)
    ledger.write(*roster_writes(creators, datetime.now(UTC)))
    return creators, unresolved


@task(name="read-feed", task_run_name="read-feed-{channel_id}", cache_policy=NONE)
def read_feed(reader: FeedReader, channel_id: str, state: CreatorState | None) -> FeedRead:
    """One conditional GET of a channel feed; raises on 404/5xx so Prefect retries it."""
    if state is None:
        return reader.read(channel_id, None, None)
    return reader.read(channel_id, state.feed_etag, state.feed_last_modified)


@task(
    name="fill-gap",
    task_run_name="fill-gap-{result.channel_id}",
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NONE,
)
def fill_gap(options: YouTubeOptions, known: set[str], result: ScanResult) -> ScanResult:
    """Add the uploads the feed no longer lists, paged from the Data API's uploads playlist."""
    assert options.data_api_key is not None
    proxy = options.proxy_url.get_secret_value() if options.proxy_url else None
    with http_client(proxy) as client:
        found = page_uploads(
            client,
            options.data_api_key.get_secret_value(),
            result.channel_id,
            known,
            options.gap_fill_max_videos,
        )
    return result.with_gap_filled(found)


@task(name="record-scans", cache_policy=NONE)
def record_scans(ledger: Ledger, results: list[ScanResult], flow_run_id: str | None) -> None:
    """New videos, creator scan state and scan events, in one transaction."""
    ledger.write(*scan_writes(results, datetime.now(UTC), flow_run_id))


@flow(name="scan-creators", task_runner=ThreadPoolTaskRunner(max_workers=64))
def scan_creators(
    channel_ids: list[str] | None = None,
    force: bool = False,
) -> ScanSummary:
    """Read the feeds of the creators due for a scan (or of `channel_ids`); record new videos.

    Args:
        channel_ids: Scan only these channels (UC... ids).
        force: Scan even creators that are not due.
    """
    settings, options = KBSettings(), load_options(YouTubeOptions)
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    proxy = options.proxy_url.get_secret_value() if options.proxy_url else None
    creators, unresolved = load_creators(settings, ledger, proxy)
    states = creator_states(ledger)
    due = _choose(creators, states, channel_ids, force)
    known = known_videos(ledger, (creator.channel_id for creator in due if creator.channel_id))
    # From here until the record step the ledger is not touched, so a notebook holding it
    # delays only the final write.
    with http_client(proxy, max_connections=options.feed_concurrency) as client:
        reads = _read_feeds(FeedReader(client, options.feed_concurrency), due, states, options)
    results = [assess_read(cid, read, known, states.get(cid)) for cid, read in reads.items()]
    results = _fill_gaps(options, known, results)
    record_scans(ledger, results, runtime.flow_run.id)
    summary = ScanSummary.of(results, unresolved)
    create_markdown_artifact(summary.to_markdown(), key="scan-summary")
    return summary


def _choose(
    creators: list[Creator],
    states: dict[str, CreatorState],
    channel_ids: list[str] | None,
    force: bool,
) -> list[Creator]:
    if channel_ids:
        creators = [creator for creator in creators if creator.channel_id in channel_ids]
    if force:
        return sorted(creators, key=lambda creator: creator.priority.rank)
    return due_for_scan(creators, states, datetime.now(UTC))


def _read_feeds(
    reader: FeedReader,
    due: list[Creator],
    states: dict[str, CreatorState],
    options: YouTubeOptions,
) -> dict[str, FeedRead | BaseException]:
    """Every due feed, read concurrently; each retried with backoff on its own."""
    reading = read_feed.with_options(
        retries=options.feed_retries,
        retry_delay_seconds=exponential_backoff(options.feed_retry_delay_seconds),
    )
    progress = RunProgress("Reading channel feeds", len(due))
    futures = {
        channel_id: reading.submit(reader, channel_id, states.get(channel_id))
        for channel_id in (creator.channel_id for creator in due)
        if channel_id
    }
    reads = {}
    for channel_id, future in futures.items():
        future.wait()
        reads[channel_id] = future.state.result(raise_on_failure=False)
        progress.advance()
    return reads


def _fill_gaps(
    options: YouTubeOptions, known: set[str], results: list[ScanResult]
) -> list[ScanResult]:
    """Page the uploads of creators whose feed may hide videos (needs a Data API key)."""
    gaps = [result for result in results if result.possible_gap]
    if gaps and not options.data_api_key:
        get_run_logger().warning(
            "%d creator(s) had only new videos in their feed, so uploads may have been missed: "
            "%s. Set a YouTube Data API key to fill such gaps.",
            len(gaps),
            ", ".join(result.channel_id for result in gaps),
        )
        return results
    filled = []
    for result in results:
        if not result.possible_gap:
            filled.append(result)
            continue
        state = fill_gap(options, known, result, return_state=True)
        outcome = state.result(raise_on_failure=False)
        filled.append(
            outcome if isinstance(outcome, ScanResult) else result.with_gap_error(str(outcome))
        )
    return filled
