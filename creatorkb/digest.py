"""What the knowledge base learned: per analyse run (for its summary artifact) and per week
(the knowledge digest: per creator, the videos analysed, the tools and techniques new to the
knowledge base, the top key points with timestamp links)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import duckdb
from pydantic import BaseModel

from creatorkb.knowledge import VideoRecord, read_records
from creatorkb.mentions import Kind, Names, read_mentions, usage
from creatorkb.report import IsoWeek

POINTS_PER_VIDEO = 2
POINTS_PER_CREATOR = 5
LEARNED_LISTED = 100  # videos a run's artifact lists; a bigger run lists these and a count


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell or list item."""
    return " ".join(text.split()).replace("|", "\\|")


def learned_markdown(records: Sequence[VideoRecord], analysed: int | None = None) -> str:
    """The analysed videos of one run with their summaries, for the run's artifact.
    `records` are the first LEARNED_LISTED of the `analysed` videos (default: all)."""
    if not records:
        return "## What this run learned\n\nNo video was analysed in this run."
    lines = ["## What this run learned", ""]
    for record in records:
        confidence = f"{record.confidence:.2f}" if record.confidence is not None else "n/a"
        lines += [
            f"### [{_cell(record.title or record.video_id)}]({record.link})",
            "",
            f"{_cell(record.creator or record.channel_id)} · route `{record.route}` · "
            f"confidence {confidence} · `kb show {record.video_id}`",
            "",
            _cell(record.summary),
            "",
        ]
        tools = ", ".join(_cell(tool.name) for tool in record.tools)
        if tools:
            lines += [f"Tools: {tools}", ""]
    more = (analysed or len(records)) - len(records)
    if more > 0:
        lines.append(
            f"... and {more:,} more videos: `kb digest` summarises them per creator, "
            "`kb export` writes every record."
        )
    return "\n".join(lines).rstrip()


class DigestVideo(BaseModel):
    video_id: str
    title: str
    link: str
    published_at: datetime | None
    summary: str
    relevance: float


class DigestPoint(BaseModel):
    text: str
    at: str
    link: str
    video_title: str


class CreatorDigest(BaseModel):
    channel_id: str
    name: str
    videos: list[DigestVideo]
    new_tools: list[str]
    new_techniques: list[str]
    key_points: list[DigestPoint]


class Digest(BaseModel):
    """The week's new knowledge, per creator."""

    week: str
    starts_at: datetime
    ends_at: datetime
    creators: list[CreatorDigest]

    @property
    def videos(self) -> int:
        return sum(len(creator.videos) for creator in self.creators)

    def to_markdown(self) -> str:
        lines = [f"# Knowledge digest {self.week}", ""]
        if not self.creators:
            lines.append(f"No video was analysed in {self.week}.")
            return "\n".join(lines)
        new_tools = sorted({tool for creator in self.creators for tool in creator.new_tools})
        lines += [
            f"{self.videos} videos analysed from {len(self.creators)} creators; "
            f"{len(new_tools)} tools new to the knowledge base"
            + (f": {', '.join(new_tools)}." if new_tools else "."),
        ]
        for creator in self.creators:
            lines += ["", f"## {_cell(creator.name)}", ""]
            for video in creator.videos:
                lines.append(f"- [{_cell(video.title)}]({video.link}): {_cell(video.summary)}")
            if creator.new_tools:
                lines += ["", f"New tools: {', '.join(map(_cell, creator.new_tools))}"]
            if creator.new_techniques:
                lines += ["", f"New techniques: {', '.join(map(_cell, creator.new_techniques))}"]
            if creator.key_points:
                lines += ["", "Key points:", ""]
                lines += [
                    f"- {_cell(point.text)} ([{point.at}]({point.link}), "
                    f"{_cell(point.video_title)})"
                    for point in creator.key_points
                ]
        return "\n".join(lines)


def _new_in_week(
    connection: duckdb.DuckDBPyConnection, kind: Kind, week: IsoWeek, names: Names
) -> dict[str, list[str]]:
    """Per creator (channel id), the names of `kind` first analysed in the week, listed as
    `kb tools` lists them."""
    mentions = read_mentions(connection, kind)
    listed = {item.key: item.name for item in usage(mentions, names)}
    first: dict[str, datetime] = {}
    for mention in mentions:
        key = names.key(mention.name)
        if key and (key not in first or mention.analysed_at < first[key]):
            first[key] = mention.analysed_at
    found: dict[str, list[str]] = defaultdict(list)
    for mention in mentions:
        key = names.key(mention.name)
        in_week = week.start_utc <= mention.analysed_at < week.end_utc
        new = key and in_week and week.start_utc <= first[key] < week.end_utc
        if new and listed[key] not in found[mention.channel_id]:
            found[mention.channel_id].append(listed[key])
    return {channel: sorted(names_, key=str.casefold) for channel, names_ in found.items()}


def week_digest(connection: duckdb.DuckDBPyConnection, week: IsoWeek, names: Names) -> Digest:
    """The digest of `week`: videos analysed in it, by creator."""
    records = read_records(connection, analysed_from=week.start_utc, analysed_until=week.end_utc)
    tools = _new_in_week(connection, "tool", week, names)
    techniques = _new_in_week(connection, "technique", week, names)
    by_creator: dict[str, list[VideoRecord]] = defaultdict(list)
    for record in records:
        by_creator[record.channel_id].append(record)
    creators = []
    for channel_id, videos in by_creator.items():
        ranked = sorted(videos, key=lambda record: -record.relevance)
        points = [
            DigestPoint(
                text=point.text,
                at=point.at,
                link=point.link,
                video_title=record.title or record.video_id,
            )
            for record in ranked
            for point in record.key_points[:POINTS_PER_VIDEO]
        ][:POINTS_PER_CREATOR]
        creators.append(
            CreatorDigest(
                channel_id=channel_id,
                name=videos[0].creator or channel_id,
                videos=[
                    DigestVideo(
                        video_id=record.video_id,
                        title=record.title or record.video_id,
                        link=record.link,
                        published_at=record.published_at,
                        summary=record.summary,
                        relevance=record.relevance,
                    )
                    for record in videos
                ],
                new_tools=tools.get(channel_id, []),
                new_techniques=techniques.get(channel_id, []),
                key_points=points,
            )
        )
    creators.sort(key=lambda creator: creator.name.casefold())
    return Digest(
        week=week.label, starts_at=week.start_utc, ends_at=week.end_utc, creators=creators
    )
