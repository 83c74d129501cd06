"""A video's record as a person reads it: what it taught, where it was said, what it cost.

Read from the ledger through a caller's (read-only) connection. Quotes are placed in the
video's timed snippets exactly as the grounding check finds them; key points and steps,
which paraphrase, may be placed near the snippets that share most of their words.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import duckdb
from pydantic import BaseModel

from creatorkb.errors import BadQuery, EmptyKnowledgeBase, VideoNotAnalysed, VideoNotFound
from creatorkb.insight import Insight
from creatorkb.segments import Segment, TimedText, clock, watch_link


class Placed(BaseModel):
    """A passage with where in the video it was said (None: could not be located)."""

    text: str
    start_s: float | None
    link: str
    match: Literal["exact", "near"] | None

    @property
    def at(self) -> str:
        """`7:05` (`~7:05` when placed near), or `unlocated`."""
        if self.start_s is None:
            return "unlocated"
        return ("~" if self.match == "near" else "") + clock(self.start_s)


class ToolMentioned(BaseModel):
    name: str
    quote: Placed


class TechniqueTaught(BaseModel):
    name: str
    steps: list[Placed]


class VideoCost(BaseModel):
    """Every model call made for the video: cloud dollars billed and local energy."""

    calls: int
    cloud_usd: Decimal
    energy_kwh: float
    energy_usd: Decimal


class VideoRecord(BaseModel):
    """One analysed video, with timestamp links."""

    video_id: str
    title: str | None
    channel_id: str
    creator: str | None
    published_at: datetime | None
    link: str
    analysed_at: datetime
    summary: str
    key_points: list[Placed]
    techniques: list[TechniqueTaught]
    tools: list[ToolMentioned]
    topics: list[str]
    relevance: float
    evidence_quotes: list[Placed]
    confidence: float | None
    components: dict[str, Any]
    route: str | None
    reason: str | None
    final_tier: str
    model: str
    flagged: bool
    cost: VideoCost

    @property
    def quotes(self) -> list[Placed]:
        """Every quote of the record: evidence quotes, then the tools' quotes."""
        return [*self.evidence_quotes, *(tool.quote for tool in self.tools)]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def place(video_id: str, timed: TimedText, text: str, *, paraphrase: bool) -> Placed:
    where = timed.place(text, paraphrase=paraphrase)
    return Placed(
        text=text,
        start_s=where.start_s if where else None,
        link=watch_link(video_id, where.start_s if where else None),
        match=where.match if where else None,
    )


def build_record(row: dict[str, Any], segments: Sequence[Segment]) -> VideoRecord:
    """The record of one `analyses` row (joined with its video, creator, decision, costs)."""
    insight = Insight.model_validate(json.loads(row["result"]))
    video_id = row["video_id"]
    timed = TimedText(segments)
    components = row["components"]
    return VideoRecord(
        video_id=video_id,
        title=row["title"],
        channel_id=row["channel_id"],
        creator=row["creator"],
        published_at=row["published_at"],
        link=watch_link(video_id),
        analysed_at=row["created_at"],
        summary=insight.summary,
        key_points=[place(video_id, timed, p, paraphrase=True) for p in insight.key_points],
        techniques=[
            TechniqueTaught(
                name=technique.name,
                steps=[place(video_id, timed, s, paraphrase=True) for s in technique.steps],
            )
            for technique in insight.techniques
        ],
        tools=[
            ToolMentioned(
                name=tool.name, quote=place(video_id, timed, tool.quote, paraphrase=False)
            )
            for tool in insight.tools
        ],
        topics=insight.topics,
        relevance=insight.relevance,
        evidence_quotes=[
            place(video_id, timed, q, paraphrase=False) for q in insight.evidence_quotes
        ],
        confidence=row["confidence"],
        components=json.loads(components) if isinstance(components, str) else components or {},
        route=row["route"],
        reason=row["reason"],
        final_tier=row["final_tier"],
        model=row["model"],
        flagged=row["flagged"],
        cost=VideoCost(
            calls=row["calls"] or 0,
            cloud_usd=row["cloud_usd"] or Decimal(0),
            energy_kwh=row["energy_kwh"] or 0.0,
            energy_usd=row["energy_usd"] or Decimal(0),
        ),
    )


_RECORDS_SQL = """
SELECT a.video_id, a.result, a.created_at, a.confidence, a.final_tier, a.model, a.flagged,
       v.title, v.channel_id, v.published_at, c.name AS creator,
       d.route, d.reason, d.components,
       m.calls, m.cloud_usd, m.energy_kwh, m.energy_usd
FROM analyses a
JOIN videos v USING (video_id)
LEFT JOIN creators c ON c.channel_id = v.channel_id
LEFT JOIN routing_decisions d ON d.decision_id = a.decision_id
LEFT JOIN (
    SELECT video_id, count(*) AS calls, sum(cost_usd) AS cloud_usd,
           sum(energy_kwh) AS energy_kwh, sum(energy_usd) AS energy_usd
    FROM llm_calls WHERE video_id IS NOT NULL GROUP BY ALL
) m USING (video_id)
"""


def read_records(
    connection: duckdb.DuckDBPyConnection,
    *,
    video_ids: Sequence[str] | None = None,
    analysed_from: datetime | None = None,
    analysed_until: datetime | None = None,
) -> list[VideoRecord]:
    """Records of the analysed videos (these ones, or those analysed in the interval),
    oldest publication first."""
    cursor = connection.execute(
        _RECORDS_SQL
        + """
        WHERE (? IS NULL OR list_contains(?, a.video_id))
          AND (CAST(? AS TIMESTAMPTZ) IS NULL OR a.created_at >= ?)
          AND (CAST(? AS TIMESTAMPTZ) IS NULL OR a.created_at < ?)
        ORDER BY coalesce(v.published_at, a.created_at), a.video_id
        """,
        [
            video_ids,
            video_ids,
            analysed_from,
            analysed_from,
            analysed_until,
            analysed_until,
        ],
    )
    names = [column[0] for column in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    segments = _segments(connection, [row["video_id"] for row in rows])
    return [build_record(row, segments.get(row["video_id"], [])) for row in rows]


def _segments(
    connection: duckdb.DuckDBPyConnection, video_ids: list[str]
) -> dict[str, list[Segment]]:
    found: dict[str, list[Segment]] = defaultdict(list)
    if not video_ids:
        return found
    for video_id, start_s, duration_s, text in connection.execute(
        "SELECT video_id, start_s, duration_s, text FROM transcript_segments "
        "WHERE list_contains(?, video_id) ORDER BY video_id, seq",
        [video_ids],
    ).fetchall():
        found[video_id].append(Segment(start_s, duration_s, text))
    return found


def read_record(connection: duckdb.DuckDBPyConnection, video_id: str) -> VideoRecord:
    """One video's record; VideoNotFound or VideoNotAnalysed say why there is none."""
    records = read_records(connection, video_ids=[video_id])
    if records:
        return records[0]
    video = connection.execute(
        "SELECT title, status FROM videos WHERE video_id = ?", [video_id]
    ).fetchall()
    if not video:
        raise VideoNotFound(
            f"no video {video_id!r} in the ledger; give a YouTube video id (the v= part of "
            "its link) of a video `kb scan` found, or find one with `kb search`"
        )
    title, status = video[0]
    raise VideoNotAnalysed(
        f"video {video_id} ({title!r}) is not analysed yet (status {status}); "
        + (
            f"run `kb analyze --video {video_id}`"
            if status == "transcribed"
            else "it needs a transcript first: `kb fetch`, then `kb analyze`"
        )
    )


def require_analyses(connection: duckdb.DuckDBPyConnection) -> int:
    """The number of analysed videos; EmptyKnowledgeBase when there are none."""
    [(count,)] = connection.execute("SELECT count(*) FROM analyses").fetchall()
    if not count:
        raise EmptyKnowledgeBase(
            "the knowledge base is empty: no video is analysed yet; run `kb run` (or "
            "`kb fetch`, then `kb analyze`) first"
        )
    return count


def resolve_creator(connection: duckdb.DuckDBPyConnection, text: str) -> list[str]:
    """Channel ids of the creator named `text` (name, @handle or channel id, any case)."""
    wanted = text.strip()
    rows = connection.execute(
        "SELECT channel_id FROM creators WHERE channel_id = ? OR lower(name) = lower(?) "
        "OR lower(handle) = lower(?) OR lower(handle) = lower('@' || ?) ORDER BY channel_id",
        [wanted, wanted, wanted, wanted],
    ).fetchall()
    if rows:
        return [row[0] for row in rows]
    known = [
        row[0] for row in connection.execute("SELECT name FROM creators ORDER BY name").fetchall()
    ]
    shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
    raise BadQuery(
        f"no creator {wanted!r} in the ledger; give a name, @handle or channel id"
        + (f" of one of: {shown}" if known else " (`kb creators list` shows the roster)")
    )


def parse_date(text: str, option: str = "--since") -> date:
    """A date written like 2026-11-30."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadQuery(f"{option} {text!r} is not a date; write it like 2026-11-30") from None
