"""A video's status in the ledger, and the only ways it may change.

discovered ──fetch──> transcribed ──analyse──> analyzed
    │                     │   ^                   │
    │                     │   └──deferred─────────┤ (analyzed again with --force)
    ├──> no_transcript    └──> failed (nothing to analyse)
    └──> blocked ──retry──> transcribed | no_transcript | blocked
"""

from __future__ import annotations

from enum import StrEnum


class VideoStatus(StrEnum):
    discovered = "discovered"  # found on the channel; no transcript yet
    transcribed = "transcribed"  # transcript stored; waiting for analysis
    no_transcript = "no_transcript"  # YouTube has none (permanent)
    blocked = "blocked"  # YouTube refused us; retried later
    analyzed = "analyzed"  # the knowledge base has its record
    failed = "failed"  # the transcript cannot be analysed (e.g. empty)

    def becomes(self, new: VideoStatus) -> VideoStatus:
        """`new`, if a video in this status may move to it; else ValueError."""
        if new not in TRANSITIONS[self]:
            raise ValueError(f"a video that is {self} cannot become {new}")
        return new


_FETCHED = frozenset({VideoStatus.transcribed, VideoStatus.no_transcript, VideoStatus.blocked})
_ANALYSED = frozenset({VideoStatus.analyzed, VideoStatus.transcribed, VideoStatus.failed})
TRANSITIONS: dict[VideoStatus, frozenset[VideoStatus]] = {
    VideoStatus.discovered: _FETCHED,
    VideoStatus.blocked: _FETCHED,
    VideoStatus.transcribed: _ANALYSED | {VideoStatus.transcribed},  # segments refetched
    VideoStatus.analyzed: _ANALYSED,  # analysed again (--force)
    VideoStatus.no_transcript: frozenset(),
    VideoStatus.failed: frozenset(),
}
