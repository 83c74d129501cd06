"""Transcripts through youtube-transcript-api, with every failure classified."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import requests
from youtube_transcript_api import (
    AgeRestricted,
    CouldNotRetrieveTranscript,
    FetchedTranscript,
    InvalidVideoId,
    NoTranscriptFound,
    PoTokenRequired,
    RequestBlocked,
    TranscriptsDisabled,
    VideoUnavailable,
    VideoUnplayable,
    YouTubeRequestFailed,
    YouTubeTranscriptApi,
)

from creatorkb.network import requests_session
from creatorkb.segments import Segment

# Nothing will change on a later try: the video is marked `no_transcript` for good.
PERMANENT_FAILURES: tuple[type[CouldNotRetrieveTranscript], ...] = (
    TranscriptsDisabled,
    NoTranscriptFound,
    VideoUnavailable,
    InvalidVideoId,
    AgeRestricted,
    VideoUnplayable,
)
# YouTube is refusing us (RequestBlocked includes IpBlocked): `blocked`, retried later.
BLOCKING_FAILURES: tuple[type[CouldNotRetrieveTranscript], ...] = (
    RequestBlocked,
    YouTubeRequestFailed,
    PoTokenRequired,
)
MAX_RETRY_DELAY = timedelta(days=14)


@dataclass(frozen=True)
class Transcript:
    """A fetched transcript."""

    video_id: str
    language: str
    language_name: str
    is_generated: bool
    text: str
    segments: tuple[Segment, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class TranscriptFailure:
    """Why a transcript could not be had; `blocked` ones are retried on a later run."""

    video_id: str
    status: Literal["no_transcript", "blocked"]
    reason: str


def classify(video_id: str, error: Exception) -> TranscriptFailure:
    """Map an exception from fetching to a video status and a short reason."""
    name = type(error).__name__
    if isinstance(error, PERMANENT_FAILURES):
        return TranscriptFailure(video_id, "no_transcript", f"{name}: {_cause(error)}")
    if isinstance(error, BLOCKING_FAILURES):
        return TranscriptFailure(video_id, "blocked", f"{name}: {_cause(error)}")
    if isinstance(error, CouldNotRetrieveTranscript):
        # Unparsable pages, consent walls: YouTube changed or interfered; try again later.
        return TranscriptFailure(video_id, "blocked", f"{name}: {_cause(error)}")
    if isinstance(error, requests.RequestException):
        return TranscriptFailure(video_id, "blocked", f"{name}: network error reaching YouTube")
    raise error


def _cause(error: Exception) -> str:
    cause = getattr(error, "cause", "") or ""
    first_line = cause.strip().splitlines()[0] if cause.strip() else ""
    return first_line.rstrip(".!") or "no detail"


class TranscriptFetcher:
    """Fetches transcripts, preferring manual ones, with one client per thread."""

    def __init__(self, languages: list[str], proxy_url: str | None = None) -> None:
        self.languages = languages
        self.proxy_url = proxy_url
        self._local = threading.local()

    def _api(self) -> YouTubeTranscriptApi:
        if not hasattr(self._local, "api"):
            self._local.api = YouTubeTranscriptApi(http_client=requests_session(self.proxy_url))
        return self._local.api

    def fetch(self, video_id: str) -> Transcript | TranscriptFailure:
        """The transcript in the most preferred language, manual before generated."""
        try:
            listing = self._api().list(video_id)
            try:
                chosen = listing.find_manually_created_transcript(self.languages)
            except NoTranscriptFound:
                chosen = listing.find_generated_transcript(self.languages)
            fetched = chosen.fetch()
        except (CouldNotRetrieveTranscript, requests.RequestException) as error:
            return classify(video_id, error)
        return _transcript(video_id, fetched)

    def fetch_track(
        self, video_id: str, language: str, is_generated: bool
    ) -> Transcript | TranscriptFailure:
        """The same track again (language, manual or generated): for its snippet timings."""
        try:
            listing = self._api().list(video_id)
            if is_generated:
                chosen = listing.find_generated_transcript([language])
            else:
                chosen = listing.find_manually_created_transcript([language])
            fetched = chosen.fetch()
        except (CouldNotRetrieveTranscript, requests.RequestException) as error:
            return classify(video_id, error)
        return _transcript(video_id, fetched)


def _transcript(video_id: str, fetched: FetchedTranscript) -> Transcript:
    """The text (snippets joined, empty ones dropped) and every snippet with its timing."""
    segments = tuple(
        Segment(float(snippet.start), float(snippet.duration), snippet.text.strip())
        for snippet in fetched
        if snippet.text.strip()
    )
    return Transcript(
        video_id=video_id,
        language=fetched.language_code,
        language_name=fetched.language,
        is_generated=fetched.is_generated,
        text=" ".join(segment.text for segment in segments),
        segments=segments,
    )


class CircuitBreaker:
    """Opens after `threshold` blocked requests in a row; any other answer closes it."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.consecutive_blocks = 0

    def record(self, outcome: Transcript | TranscriptFailure) -> None:
        blocked = isinstance(outcome, TranscriptFailure) and outcome.status == "blocked"
        self.consecutive_blocks = self.consecutive_blocks + 1 if blocked else 0

    @property
    def is_open(self) -> bool:
        return self.consecutive_blocks >= self.threshold


def next_attempt_at(now: datetime, attempts: int, base_hours: float) -> datetime:
    """When a video blocked `attempts` times in a row may be tried again (doubling delay)."""
    delay = timedelta(hours=base_hours) * (2 ** max(attempts - 1, 0))
    return now + min(delay, MAX_RETRY_DELAY)
