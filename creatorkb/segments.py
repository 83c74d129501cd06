"""Timed transcript snippets: where in a video something was said, and links to that moment.

A quote is located the way the grounding check finds it (creatorkb.confidence.normalize:
case, punctuation and spacing ignored), in the snippets joined in order, so a quote may run
across snippet boundaries; it starts in the snippet where its first word is. A quote that is
not there is unlocated (the ungrounded kind). Paraphrases (key points, steps) are placed
`near` the snippets that share most of their words, when enough of them do.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
from pydantic import BaseModel

from creatorkb.confidence import normalize
from creatorkb.fetch_summary import failure_counts, fetch_markdown
from creatorkb.ledger import Ledger, Write

WATCH_URL = "https://www.youtube.com/watch?v="
NEAR_WINDOW = 3  # snippets a paraphrase is compared with at once
NEAR_SHARE = 0.6  # share of a paraphrase's words a window must contain to place it near
PASSAGE_WORDS = 60  # transcript passages for search: about 20-30 seconds of speech
_SHORT_WORD = re.compile(r"^\w{1,2}$")

Match = Literal["exact", "near"]


@dataclass(frozen=True)
class Segment:
    """One snippet as YouTube times it."""

    start_s: float
    duration_s: float
    text: str


@dataclass(frozen=True)
class Location:
    """Where a passage was said: its start second and how it was found."""

    start_s: float
    match: Match


def watch_link(video_id: str, start_s: float | None = None) -> str:
    """The video's page, at `start_s` (whole seconds, as YouTube's `t` takes them)."""
    link = f"{WATCH_URL}{video_id}"
    return link if start_s is None else f"{link}&t={int(start_s)}s"


def clock(start_s: float) -> str:
    """A start second as people read it: 7:05, or 1:02:03 past the hour."""
    minutes, seconds = divmod(int(start_s), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def segment_rows(video_id: str, segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """`transcript_segments` rows of one video."""
    return [
        {
            "video_id": video_id,
            "seq": seq,
            "start_s": segment.start_s,
            "duration_s": segment.duration_s,
            "text": segment.text,
        }
        for seq, segment in enumerate(segments)
    ]


class TimedText:
    """A video's snippets joined and normalised as the grounding check sees its transcript,
    with the offset at which each snippet starts."""

    def __init__(self, segments: Iterable[Segment]) -> None:
        pieces: list[str] = []
        self._starts: list[float] = []
        self._offsets: list[int] = []
        self._words: list[set[str]] = []
        self._windows: list[set[str]] | None = None
        offset = 0
        for segment in segments:
            piece = normalize(segment.text)
            if not piece:
                continue
            pieces.append(piece)
            self._starts.append(segment.start_s)
            self._offsets.append(offset)
            self._words.append(_content_words(piece))
            offset += len(piece) + 1
        self._text = " ".join(pieces)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def locate(self, quote: str) -> float | None:
        """The start second of the snippet where `quote` begins, if the video says it."""
        needle = normalize(quote)
        if not needle or not self:
            return None
        found = f" {self._text} ".find(f" {needle} ")
        if found < 0:
            return None
        # The padded text is one character longer in front: `found` is the quote's offset.
        return self._starts[bisect_right(self._offsets, found) - 1]

    def near(self, text: str) -> float | None:
        """The start of the run of snippets sharing most of `text`'s words, if enough do."""
        wanted = _content_words(normalize(text))
        if not wanted or not self:
            return None
        if self._windows is None:  # built once: a record has many paraphrases to place
            self._windows = [
                set().union(*self._words[first : first + NEAR_WINDOW])
                for first in range(len(self._words))
            ]
        best, best_score = None, (0.0, 0)
        for first, window in enumerate(self._windows):
            lead = len(wanted & self._words[first])
            if not lead:  # a window starts where the words start
                continue
            score = (len(wanted & window) / len(wanted), lead)
            if score > best_score:
                best, best_score = first, score
        if best is None or best_score[0] < NEAR_SHARE:
            return None
        return self._starts[best]

    def place(self, text: str, *, paraphrase: bool) -> Location | None:
        """Where `text` was said: verbatim, else (for a paraphrase) near the words it shares."""
        exact = self.locate(text)
        if exact is not None:
            return Location(exact, "exact")
        if paraphrase:
            close = self.near(text)
            if close is not None:
                return Location(close, "near")
        return None


def _content_words(normalized: str) -> set[str]:
    return {word for word in normalized.split() if not _SHORT_WORD.match(word)}


@dataclass(frozen=True)
class Window:
    """Consecutive snippets read as one passage of the transcript."""

    seq: int
    start_s: float
    text: str


def windows(segments: Sequence[Segment], words: int = PASSAGE_WORDS) -> list[Window]:
    """The transcript cut into passages of about `words` words, never inside a snippet."""
    found: list[Window] = []
    texts: list[str] = []
    count = 0
    start = 0.0
    for segment in segments:
        text = segment.text.strip()
        if not text:
            continue
        if not texts:
            start = segment.start_s
        texts.append(text)
        count += len(text.split())
        if count >= words:
            found.append(Window(len(found), start, " ".join(texts)))
            texts, count = [], 0
    if texts:
        found.append(Window(len(found), start, " ".join(texts)))
    return found


@dataclass(frozen=True)
class VideoWithoutSegments:
    """A transcribed video whose snippet timings were never stored (fetched before kb kept
    them): its transcript's track, to fetch the same one again."""

    video_id: str
    language: str
    is_generated: bool


def videos_without_segments(ledger: Ledger, limit: int) -> list[VideoWithoutSegments]:
    """Videos with a transcript and no segments, analysed ones first (their quotes get
    links), newest first."""
    rows = ledger.rows(
        """
        SELECT t.video_id, t.language, t.is_generated
        FROM transcripts t JOIN videos v USING (video_id)
        WHERE NOT EXISTS (SELECT 1 FROM transcript_segments s WHERE s.video_id = t.video_id)
        ORDER BY v.status = 'analyzed' DESC, v.published_at DESC NULLS LAST, t.video_id
        LIMIT ?
        """,
        [limit],
    )
    return [VideoWithoutSegments(**row) for row in rows]


def store_segments(ledger: Ledger, timed: Mapping[str, Sequence[Segment]]) -> None:
    """Replace the segments of these videos (video id -> snippets) as one atomic step: on a
    lake, retried whole when a concurrent commit conflicts with it."""
    if not timed:
        return
    rows = [row for video_id, segments in timed.items() for row in segment_rows(video_id, segments)]

    def replace(connection: duckdb.DuckDBPyConnection) -> None:
        # Delete and insert in one step: a video re-timed with fewer snippets keeps none of
        # its old ones, and a retry starts again from the delete.
        connection.execute(
            "DELETE FROM transcript_segments WHERE list_contains(?, video_id)", [list(timed)]
        )
        ledger.apply(connection, Write.insert_new("transcript_segments", ("video_id", "seq"), rows))

    ledger.atomic(replace)


class SegmentsSummary(BaseModel):
    """What one run of `kb fetch --segments` did."""

    attempted: int
    stored: int
    failures_by_reason: dict[str, int]
    breaker_opened: bool
    not_attempted: int

    @classmethod
    def of(
        cls,
        stored: int,
        failures: Sequence[tuple[str, str]],
        breaker_opened: bool,
        not_attempted: int,
    ) -> SegmentsSummary:
        """From the count stored and each failure's (status, reason)."""
        return cls(
            attempted=stored + len(failures),
            stored=stored,
            failures_by_reason=failure_counts(failures),
            breaker_opened=breaker_opened,
            not_attempted=not_attempted,
        )

    def to_markdown(self) -> str:
        return fetch_markdown(
            "Snippet timings",
            "timings stored",
            attempted=self.attempted,
            stored=self.stored,
            not_attempted=self.not_attempted,
            failures_by_reason=self.failures_by_reason,
            breaker_opened=self.breaker_opened,
        )
