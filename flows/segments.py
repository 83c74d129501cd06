"""Fetch snippet timings for transcripts stored without them: no analysis, nothing paid."""

from __future__ import annotations

import time
from typing import Annotated

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from blocks import load_options
from creatorkb.ledger import Ledger, open_ledger
from creatorkb.segments import (
    SegmentsSummary,
    VideoWithoutSegments,
    store_segments,
    videos_without_segments,
)
from creatorkb.settings import KBSettings, YouTubeOptions
from creatorkb.transcripts import CircuitBreaker, Transcript, TranscriptFailure, TranscriptFetcher
from flows.indexing import index_knowledge
from flows.progress import RunProgress

RECORD_EVERY = 25


@task(name="fetch-timings", cache_policy=NONE)
def fetch_timings(
    fetcher: TranscriptFetcher, video: VideoWithoutSegments
) -> Transcript | TranscriptFailure:
    """The video's stored track again, for its snippets' start and duration."""
    return fetcher.fetch_track(video.video_id, video.language, video.is_generated)


@task(name="record-segments", cache_policy=NONE)
def record_segments(ledger: Ledger, transcripts: list[Transcript]) -> None:
    store_segments(ledger, {item.video_id: item.segments for item in transcripts})


@flow(name="fetch-segments")
def fetch_segments(limit: Annotated[int, Field(ge=1, le=10_000)] = 500) -> SegmentsSummary:
    """Timings for transcribed videos that have none; then their quotes get links.

    Args:
        limit: Most videos to fetch timings for this run.
    """
    settings, options = KBSettings(), load_options(YouTubeOptions)
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    videos = videos_without_segments(ledger, limit)
    outcomes, breaker = _fetch_all(videos, options, ledger)
    stored = sum(isinstance(outcome, Transcript) for outcome in outcomes)
    if stored:
        index_knowledge(ledger, runtime.flow_run.id, return_state=True)
    failures = [(o.status, o.reason) for o in outcomes if isinstance(o, TranscriptFailure)]
    summary = SegmentsSummary.of(stored, failures, breaker.is_open, len(videos) - len(outcomes))
    create_markdown_artifact(summary.to_markdown(), key="segments-summary")
    return summary


def _fetch_all(
    videos: list[VideoWithoutSegments], options: YouTubeOptions, ledger: Ledger
) -> tuple[list[Transcript | TranscriptFailure], CircuitBreaker]:
    """One video at a time, pausing between requests, until the breaker opens."""
    proxy = options.proxy_url.get_secret_value() if options.proxy_url else None
    fetcher = TranscriptFetcher(options.languages, proxy)
    breaker = CircuitBreaker(options.breaker_threshold)
    progress = RunProgress("Fetching snippet timings", len(videos))
    outcomes: list[Transcript | TranscriptFailure] = []
    unrecorded: list[Transcript] = []
    for video in videos:
        if breaker.is_open:
            get_run_logger().warning(
                "Circuit breaker open after %d blocked requests; %d videos wait for a later run",
                breaker.consecutive_blocks,
                len(videos) - len(outcomes),
            )
            break
        if outcomes:
            time.sleep(options.pause_seconds)
        outcome = fetch_timings(fetcher, video)
        breaker.record(outcome)
        outcomes.append(outcome)
        if isinstance(outcome, Transcript):
            unrecorded.append(outcome)
        progress.advance()
        if len(unrecorded) >= RECORD_EVERY:
            record_segments(ledger, unrecorded)
            unrecorded = []
    record_segments(ledger, unrecorded)
    return outcomes, breaker
