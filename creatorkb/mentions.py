"""What the creators use across videos: tools, techniques and topics under one name each.

Names are compared with case, spacing and punctuation ignored ("Comfy UI" = "comfyui" =
"ComfyUI"), and through a small configurable alias list ("SDXL" = "Stable Diffusion XL").
A name is listed under its alias target, or else under its most common spelling.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import duckdb
from pydantic import BaseModel

from creatorkb.confidence import normalize

Kind = Literal["tool", "technique", "topic"]

# One row per (video, name) of each kind, from the JSON records in `analyses.result`.
_NAMES_SQL = {
    "tool": "SELECT a.video_id, t ->> 'name' AS name FROM analyses a, "
    "unnest(CAST(a.result -> 'tools' AS JSON[])) AS u(t)",
    "technique": "SELECT a.video_id, t ->> 'name' AS name FROM analyses a, "
    "unnest(CAST(a.result -> 'techniques' AS JSON[])) AS u(t)",
    "topic": "SELECT a.video_id, t AS name FROM analyses a, "
    "unnest(CAST(a.result -> 'topics' AS VARCHAR[])) AS u(t)",
}


def _compact(name: str) -> str:
    return normalize(name).replace(" ", "")


class Names:
    """Turns a spelling into the key it is counted under, and a key into its listed name."""

    def __init__(self, aliases: Mapping[str, str]) -> None:
        self._aliases = {_compact(other): target for other, target in aliases.items()}

    def key(self, name: str) -> str:
        compact = _compact(name)
        target = self._aliases.get(compact)
        return _compact(target) if target else compact

    def listed(self, key: str, spellings: Sequence[str]) -> str:
        """The alias target when there is one for the key, else the most used spelling."""
        targets = [target for target in self._aliases.values() if _compact(target) == key]
        if targets:
            return targets[0]
        counts = Counter(spellings)
        return max(counts, key=lambda spelling: (counts[spelling], -spellings.index(spelling)))


@dataclass(frozen=True)
class Mention:
    """A tool, technique or topic named in one analysed video."""

    kind: Kind
    name: str
    video_id: str
    title: str | None
    channel_id: str
    creator: str | None
    said_at: datetime  # when the video was published (when analysed, if unknown)
    analysed_at: datetime


def read_mentions(
    connection: duckdb.DuckDBPyConnection,
    kind: Kind,
    *,
    since: date | None = None,
    channel_ids: Sequence[str] | None = None,
) -> list[Mention]:
    """Every `kind` named in the analysed videos (published since `since`, by these creators)."""
    rows = connection.execute(
        f"""
        WITH named AS ({_NAMES_SQL[kind]})
        SELECT n.name, n.video_id, v.title, v.channel_id, c.name AS creator,
               coalesce(v.published_at, a.created_at) AS said_at, a.created_at
        FROM named n
        JOIN analyses a USING (video_id)
        JOIN videos v USING (video_id)
        LEFT JOIN creators c ON c.channel_id = v.channel_id
        WHERE trim(n.name) <> ''
          AND (CAST(? AS DATE) IS NULL OR coalesce(v.published_at, a.created_at) >= ?)
          AND (? IS NULL OR list_contains(?, v.channel_id))
        ORDER BY said_at, n.video_id
        """,
        [since, since, channel_ids, channel_ids],
    ).fetchall()
    return [Mention(kind, *row) for row in rows]


class Usage(BaseModel):
    """One tool, technique or topic across the knowledge base."""

    kind: Kind
    name: str
    key: str
    videos: int
    creators: int
    first: date
    last: date
    video_ids: list[str]
    titles: list[str]
    spellings: list[str]


def usage(mentions: Iterable[Mention], names: Names) -> list[Usage]:
    """Mentions grouped under one name each: most videos first."""
    groups: dict[tuple[Kind, str], list[Mention]] = defaultdict(list)
    for mention in mentions:
        key = names.key(mention.name)
        if key:
            groups[mention.kind, key].append(mention)
    found = []
    for (kind, key), group in groups.items():
        videos = list(dict.fromkeys(mention.video_id for mention in group))
        titles = {mention.video_id: mention.title or mention.video_id for mention in group}
        spellings = [mention.name.strip() for mention in group]
        found.append(
            Usage(
                kind=kind,
                name=names.listed(key, spellings),
                key=key,
                videos=len(videos),
                creators=len({mention.channel_id for mention in group}),
                first=min(mention.said_at for mention in group).date(),
                last=max(mention.said_at for mention in group).date(),
                video_ids=videos,
                titles=[titles[video] for video in videos],
                spellings=sorted(set(spellings)),
            )
        )
    return sorted(found, key=lambda item: (-item.videos, item.name.casefold()))


def videos_naming(
    connection: duckdb.DuckDBPyConnection, kind: Kind, name: str, names: Names
) -> tuple[str, list[str]] | None:
    """(listed name, ids of the videos naming it), or None if no video names it."""
    wanted = names.key(name)
    matches = [item for item in usage(read_mentions(connection, kind), names) if item.key == wanted]
    return (matches[0].name, matches[0].video_ids) if matches else None


def known_names(connection: duckdb.DuckDBPyConnection, kind: Kind, names: Names) -> list[str]:
    """The listed names of a kind, most used first (for 'did you mean' messages)."""
    return [item.name for item in usage(read_mentions(connection, kind), names)]
