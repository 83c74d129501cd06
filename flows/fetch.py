"""Fetch transcripts: one request sequence per discovered video, failures classified."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from blocks import load_options
from creatorkb.catalog import FetchSummary, VideoToFetch, transcript_writes, videos_to_fetch
from creatorkb.ledger import Ledger, open_ledger
from creatorkb.settings import KBSettings, YouTubeOptions
from creatorkb.transcripts import CircuitBreaker, Transcript, TranscriptFailure, TranscriptFetcher
from flows.progress import RunProgress

RECORD_EVERY = 25
Outcome = tuple[VideoToFetch, Transcript | TranscriptFailure]


@task(name="fetch-transcript", task_run_name="fetch-{video_id}", cache_policy=NONE)
def fetch_transcript(fetcher: TranscriptFetcher, video_id: str) -> Transcript | TranscriptFailure:
    """The video's transcript, or the classified reason there is none."""
    return fetcher.fetch(video_id)


@task(name="record-transcripts", cache_policy=NONE)
def record_transcripts(ledger: Ledger, outcomes: list[Outcome], retry_base_hours: float) -> None:
    """Transcripts and video statuses, in one transaction."""
    ledger.write(*transcript_writes(outcomes, datetime.now(UTC), retry_base_hours))


@flow(name="fetch-transcripts")
def fetch_transcripts(
    limit: Annotated[int, Field(ge=1, le=10_000)] = 200,
    languages: list[str] | None = None,
) -> FetchSummary:
    """Fetch transcripts of discovered videos (and of blocked ones whose retry time came).

    Args:
        limit: Most videos to fetch transcripts for.
        languages: Transcript languages in order of preference, e.g. en, de.
    """
    settings, options = KBSettings(), load_options(YouTubeOptions)
    if languages:
        options = options.model_copy(update={"languages": languages})
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    videos = videos_to_fetch(ledger, datetime.now(UTC), limit)
    outcomes, breaker = _fetch_all(videos, options, ledger)
    summary = FetchSummary.of(outcomes, breaker.is_open, len(videos) - len(outcomes))
    create_markdown_artifact(summary.to_markdown(), key="transcript-summary")
    return summary


def _fetch_all(
    videos: list[VideoToFetch], options: YouTubeOptions, ledger: Ledger
) -> tuple[list[Outcome], CircuitBreaker]:
    """Ask YouTube one video at a time, pausing between requests, until the breaker opens."""
    proxy = options.proxy_url.get_secret_value() if options.proxy_url else None
    fetcher = TranscriptFetcher(options.languages, proxy)
    breaker = CircuitBreaker(options.breaker_threshold)
    progress = RunProgress("Fetching transcripts", len(videos))
    outcomes: list[Outcome] = []
    unrecorded: list[Outcome] = []
    for video in videos:
        if breaker.is_open:
            get_run_logger().warning(
                "Circuit breaker open: %d requests in a row were blocked; not asking YouTube "
                "for the %d remaining videos this run.",
                breaker.consecutive_blocks,
                len(videos) - len(outcomes),
            )
            break
        if outcomes:
            time.sleep(options.pause_seconds)
        outcome = fetch_transcript(fetcher, video.video_id)
        breaker.record(outcome)
        outcomes.append((video, outcome))
        unrecorded.append((video, outcome))
        progress.advance()
        if len(unrecorded) >= RECORD_EVERY:
            record_transcripts(ledger, unrecorded, options.retry_base_hours)
            unrecorded = []
    record_transcripts(ledger, unrecorded, options.retry_base_hours)
    return outcomes, breaker
