"""Creators, videos and transcripts in the ledger: what is due, and what was found."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import BaseModel

from creatorkb.errors import FeedUnavailable
from creatorkb.feed import FEED_SIZE, FeedEntry, FeedRead, is_possible_gap
from creatorkb.fetch_summary import failure_counts, fetch_markdown
from creatorkb.ledger import Ledger, Write
from creatorkb.roster import Creator, Priority
from creatorkb.segments import segment_rows
from creatorkb.status import VideoStatus
from creatorkb.transcripts import Transcript, TranscriptFailure, next_attempt_at


@dataclass(frozen=True)
class CreatorState:
    """What the ledger remembers about scanning one creator."""

    channel_id: str
    handle: str | None
    last_scanned_at: datetime | None
    feed_etag: str | None
    feed_last_modified: str | None


def creator_states(ledger: Ledger) -> dict[str, CreatorState]:
    """Scan state of every creator the ledger knows, by channel id."""
    rows = ledger.rows(
        "SELECT channel_id, handle, last_scanned_at, feed_etag, feed_last_modified FROM creators"
    )
    return {row["channel_id"]: CreatorState(**row) for row in rows}


def resolved_handles(states: Iterable[CreatorState]) -> dict[str, str]:
    """Handles resolved on earlier runs, so each is resolved only once."""
    return {state.handle: state.channel_id for state in states if state.handle}


def roster_writes(creators: Sequence[Creator], now: datetime) -> list[Write]:
    """Mirror the roster into the ledger, keeping each creator's scan state."""
    rows = [
        {
            "channel_id": creator.channel_id,
            "name": creator.name,
            "handle": creator.handle,
            "priority": creator.priority,
            "scan_interval_days": creator.scan_interval_days,
            "last_scanned_at": None,
            "feed_etag": None,
            "feed_last_modified": None,
            "added_at": now,
        }
        for creator in creators
        if creator.channel_id
    ]
    return [
        Write.upsert(
            "creators",
            ("channel_id",),
            rows,
            update=("name", "handle", "priority", "scan_interval_days"),
        )
    ]


def due_for_scan(
    creators: Sequence[Creator], states: dict[str, CreatorState], now: datetime
) -> list[Creator]:
    """Creators whose scan interval has passed, most important and longest-waiting first."""
    due = [
        creator
        for creator in creators
        if creator.channel_id and creator.is_due(_last_scanned(states, creator.channel_id), now)
    ]

    def order(creator: Creator) -> tuple[int, datetime]:
        last = _last_scanned(states, creator.channel_id or "")
        return (creator.priority.rank, last or datetime.min.replace(tzinfo=now.tzinfo))

    return sorted(due, key=order)


def _last_scanned(states: dict[str, CreatorState], channel_id: str) -> datetime | None:
    state = states.get(channel_id)
    return state.last_scanned_at if state else None


def known_videos(ledger: Ledger, channel_ids: Iterable[str]) -> set[str]:
    """Every video id the ledger has for these channels.

    Read before the feeds are, so that a scan needs the ledger again only to write.
    """
    wanted = sorted(set(channel_ids))
    if not wanted:
        return set()
    rows = ledger.rows("SELECT video_id FROM videos WHERE list_contains(?, channel_id)", [wanted])
    return {row["video_id"] for row in rows}


@dataclass(frozen=True)
class ScanResult:
    """One creator's scan: the feed read (or why it failed), new videos, gap handling."""

    channel_id: str
    read: FeedRead | None
    error: str | None = None
    error_status: int | None = None
    new_entries: tuple[FeedEntry, ...] = ()
    possible_gap: bool = False
    gap_entries: tuple[FeedEntry, ...] = field(default=())
    gap_error: str | None = None

    @property
    def outcome(self) -> str:
        return self.read.outcome if self.read else "failed"

    def with_gap_filled(self, found: Sequence[FeedEntry]) -> ScanResult:
        """This result plus the uploads the Data API listed that the feed did not."""
        listed = {entry.video_id for entry in self.new_entries}
        extra = tuple(entry for entry in found if entry.video_id not in listed)
        return replace(self, gap_entries=extra)

    def with_gap_error(self, error: str) -> ScanResult:
        return replace(self, gap_error=f"gap not filled: {error}")


def assess_read(
    channel_id: str,
    read: FeedRead | BaseException,
    known: set[str],
    state: CreatorState | None,
) -> ScanResult:
    """Which entries of one feed read are new, and whether uploads may have been missed."""
    if not isinstance(read, FeedRead):
        status = read.status if isinstance(read, FeedUnavailable) else None
        return ScanResult(channel_id, None, error=str(read), error_status=status)
    new = tuple(entry for entry in read.entries if entry.video_id not in known)
    scanned_before = state is not None and state.last_scanned_at is not None
    gap = is_possible_gap(read, {entry.video_id for entry in new}, scanned_before)
    return ScanResult(channel_id, read, new_entries=new, possible_gap=gap)


def scan_writes(
    results: Sequence[ScanResult], now: datetime, flow_run_id: str | None
) -> list[Write]:
    """The ledger rows a scan produces: new videos, creator scan state, scan events."""
    videos = [
        _video_row(entry, source, now)
        for result in results
        for source, entries in (("feed", result.new_entries), ("data_api", result.gap_entries))
        for entry in entries
    ]
    scanned = [
        {
            "channel_id": result.channel_id,
            "last_scanned_at": now,
            "feed_etag": result.read.etag,
            "feed_last_modified": result.read.last_modified,
        }
        for result in results
        if result.read is not None
    ]
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "ts": now,
            "flow_run_id": flow_run_id,
            "channel_id": result.channel_id,
            "outcome": result.outcome,
            "http_status": result.read.http_status if result.read else result.error_status,
            "entries": len(result.read.entries) if result.read else 0,
            "new_videos": len(result.new_entries) + len(result.gap_entries),
            "possible_gap": result.possible_gap,
            "gap_filled": len(result.gap_entries),
            "response_bytes": result.read.response_bytes if result.read else 0,
            "detail": result.error or result.gap_error,
        }
        for result in results
    ]
    return [
        Write.insert_new("videos", ("video_id",), videos),
        Write.update_existing("creators", ("channel_id",), scanned),
        Write.insert_new("scan_events", ("event_id",), events),
    ]


def _video_row(entry: FeedEntry, source: str, now: datetime) -> dict[str, object]:
    return {
        "video_id": entry.video_id,
        "channel_id": entry.channel_id,
        "title": entry.title,
        "description": entry.description,
        "published_at": entry.published_at,
        "status": VideoStatus.discovered,
        "status_reason": None,
        "source": source,
        "fetch_attempts": 0,
        "next_fetch_at": None,
        "discovered_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True)
class VideoToFetch:
    """A video whose transcript is wanted."""

    video_id: str
    channel_id: str
    title: str | None
    fetch_attempts: int
    status: VideoStatus = VideoStatus.discovered


def videos_to_fetch(ledger: Ledger, now: datetime, limit: int) -> list[VideoToFetch]:
    """Discovered videos, and blocked ones whose retry time has come; important creators first."""
    rows = ledger.rows(
        f"""
        SELECT v.video_id, v.channel_id, v.title, v.fetch_attempts, v.status
        FROM videos v LEFT JOIN creators c USING (channel_id)
        WHERE v.status = '{VideoStatus.discovered}'
           OR (v.status = '{VideoStatus.blocked}' AND coalesce(v.next_fetch_at <= ?, true))
        ORDER BY {Priority.rank_sql("c.priority")}, v.published_at DESC NULLS LAST, v.video_id
        LIMIT ?
        """,
        [now, limit],
    )
    return [VideoToFetch(**{**row, "status": VideoStatus(row["status"])}) for row in rows]


def transcript_writes(
    outcomes: Sequence[tuple[VideoToFetch, Transcript | TranscriptFailure]],
    now: datetime,
    retry_base_hours: float,
) -> list[Write]:
    """Stored transcripts and the new status of each video tried."""
    transcripts = []
    segments = []
    statuses = []
    for video, outcome in outcomes:
        attempts = video.fetch_attempts + 1
        if isinstance(outcome, Transcript):
            segments += segment_rows(outcome.video_id, outcome.segments)
            transcripts.append(
                {
                    "video_id": outcome.video_id,
                    "language": outcome.language,
                    "language_name": outcome.language_name,
                    "is_generated": outcome.is_generated,
                    "text": outcome.text,
                    "fetched_at": now,
                }
            )
            status, reason, retry_at = VideoStatus.transcribed, None, None
        else:
            status, reason = VideoStatus(outcome.status), outcome.reason
            retry_at = (
                next_attempt_at(now, attempts, retry_base_hours)
                if outcome.status == "blocked"
                else None
            )
        statuses.append(
            {
                "video_id": video.video_id,
                "status": video.status.becomes(status),
                "status_reason": reason,
                "fetch_attempts": attempts,
                "next_fetch_at": retry_at,
                "updated_at": now,
            }
        )
    return [
        Write.upsert(
            "transcripts",
            ("video_id",),
            transcripts,
            update=("language", "language_name", "is_generated", "text", "fetched_at"),
        ),
        Write.upsert(
            "transcript_segments",
            ("video_id", "seq"),
            segments,
            update=("start_s", "duration_s", "text"),
        ),
        Write.update_existing("videos", ("video_id",), statuses),
    ]


class ScanSummary(BaseModel):
    """What one scan did, for the command line and the run's summary artifact."""

    creators_due: int
    feeds_changed: int
    feeds_unchanged: int
    new_videos: int
    possible_gaps: list[str]
    gap_filled: int
    failures: dict[str, str]
    unresolved: dict[str, str]

    @classmethod
    def of(cls, results: Sequence[ScanResult], unresolved: dict[str, str]) -> ScanSummary:
        return cls(
            creators_due=len(results),
            feeds_changed=sum(result.outcome == "ok" for result in results),
            feeds_unchanged=sum(result.outcome == "not_modified" for result in results),
            new_videos=sum(len(r.new_entries) + len(r.gap_entries) for r in results),
            possible_gaps=[result.channel_id for result in results if result.possible_gap],
            gap_filled=sum(len(result.gap_entries) for result in results),
            failures={r.channel_id: r.error or "" for r in results if r.outcome == "failed"},
            unresolved=unresolved,
        )

    def to_markdown(self) -> str:
        lines = [
            "# Scan summary",
            "",
            "| creators due | feeds changed | unchanged (304) | failed | new videos | gaps |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {self.creators_due} | {self.feeds_changed} | {self.feeds_unchanged} "
            f"| {len(self.failures)} | {self.new_videos} | {len(self.possible_gaps)} |",
        ]
        if self.possible_gaps:
            lines += ["", f"Possible gaps (all {FEED_SIZE} feed entries new):"]
            lines += [f"- {channel}" for channel in self.possible_gaps]
            lines += ["", f"Videos added from the Data API: {self.gap_filled}"]
        if self.failures or self.unresolved:
            lines += ["", "| creator | problem (left for the next scan) |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in {**self.failures, **self.unresolved}.items()]
        return "\n".join(lines)


class FetchSummary(BaseModel):
    """What one transcript run did."""

    attempted: int
    transcribed: int
    failures_by_reason: dict[str, int]
    breaker_opened: bool
    not_attempted: int

    @classmethod
    def of(
        cls,
        outcomes: Sequence[tuple[VideoToFetch, Transcript | TranscriptFailure]],
        breaker_opened: bool,
        not_attempted: int,
    ) -> FetchSummary:
        failures = [
            (outcome.status, outcome.reason)
            for _, outcome in outcomes
            if isinstance(outcome, TranscriptFailure)
        ]
        return cls(
            attempted=len(outcomes),
            transcribed=sum(isinstance(outcome, Transcript) for _, outcome in outcomes),
            failures_by_reason=failure_counts(failures),
            breaker_opened=breaker_opened,
            not_attempted=not_attempted,
        )

    def to_markdown(self) -> str:
        return fetch_markdown(
            "Transcript summary",
            "transcripts stored",
            attempted=self.attempted,
            stored=self.transcribed,
            not_attempted=self.not_attempted,
            failures_by_reason=self.failures_by_reason,
            breaker_opened=self.breaker_opened,
        )
