"""The transcript flow: real youtube-transcript-api against recorded YouTube responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from creatorkb.ledger import Ledger, Write
from flows.fetch import fetch_transcripts
from flows.pipeline import pipeline
from flows.scan import scan_creators
from tests.conftest import ledger_of
from tests.servers.youtube import CaptionTrack, FakeYouTube

pytestmark = pytest.mark.usefixtures("prefect_api")

CHANNEL = "UCfetchffffffffffffffff1"
START = datetime(2026, 11, 1, tzinfo=UTC)

# scenario -> (status, exception class named in the reason)
FAILURES = {
    "transcripts_disabled": ("no_transcript", "TranscriptsDisabled"),
    "no_transcript_found": ("no_transcript", "NoTranscriptFound"),
    "video_unavailable": ("no_transcript", "VideoUnavailable"),
    "age_restricted": ("no_transcript", "AgeRestricted"),
    "unplayable": ("no_transcript", "VideoUnplayable"),
    "request_blocked": ("blocked", "RequestBlocked"),
    "ip_blocked": ("blocked", "IpBlocked"),
    "recaptcha": ("blocked", "IpBlocked"),
    "request_failed": ("blocked", "YouTubeRequestFailed"),
    "po_token_required": ("blocked", "PoTokenRequired"),
}


def scan_channel(kb_env: Path, youtube: FakeYouTube, scenarios: list[str]) -> list[str]:
    """Publish one video per scenario (newest first in fetch order) and scan them in."""
    youtube.add_channel(CHANNEL, "Fetcher")
    ids = [
        youtube.add_video(
            CHANNEL,
            title=scenario,
            published=START - timedelta(hours=i),
            transcript=scenario,
            transcript_text=f"transcript number {i} about {scenario}",
        )
        for i, scenario in enumerate(scenarios)
    ]
    (kb_env / "creators.yaml").write_text(
        yaml.safe_dump({"creators": [{"channel_id": CHANNEL, "name": "Fetcher"}]})
    )
    scan_creators()
    return ids


def statuses(ledger: Ledger) -> dict[str, dict]:
    rows = ledger.rows("SELECT * FROM videos")
    return {row["video_id"]: row for row in rows}


def test_every_failure_class_ends_in_its_status_with_its_reason(
    kb_env: Path, youtube: FakeYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_YOUTUBE_BREAKER_THRESHOLD", "50")
    scenarios = ["ok", *FAILURES]
    ids = scan_channel(kb_env, youtube, scenarios)
    ledger = ledger_of(kb_env)
    # A video id stored as a URL by mistake: the library refuses it as InvalidVideoId.
    bad_id = f"https://www.youtube.com/watch?v={ids[0]}"
    ledger.write(
        Write.insert_new(
            "videos",
            ("video_id",),
            [
                {
                    "video_id": bad_id,
                    "channel_id": CHANNEL,
                    "title": "pasted URL",
                    "status": "discovered",
                    "source": "feed",
                    "fetch_attempts": 0,
                    "discovered_at": START,
                    "updated_at": START,
                }
            ],
        )
    )

    summary = fetch_transcripts()

    assert summary.attempted == len(scenarios) + 1
    assert summary.transcribed == 1
    videos = statuses(ledger)
    assert videos[ids[0]]["status"] == "transcribed"
    for video_id, scenario in zip(ids[1:], FAILURES, strict=True):
        status, error = FAILURES[scenario]
        assert videos[video_id]["status"] == status, scenario
        assert videos[video_id]["status_reason"].startswith(f"{error}:"), scenario
        assert (videos[video_id]["next_fetch_at"] is not None) == (status == "blocked")
    assert videos[bad_id]["status"] == "no_transcript"
    assert videos[bad_id]["status_reason"].startswith("InvalidVideoId:")
    transcript = ledger.rows("SELECT * FROM transcripts")
    assert transcript == [
        {
            "video_id": ids[0],
            "language": "en",
            "language_name": transcript[0]["language_name"],
            "is_generated": False,
            "text": "transcript number 0 about ok",
            "fetched_at": transcript[0]["fetched_at"],
        }
    ]
    assert summary.failures_by_reason["blocked: IpBlocked"] == 2
    assert all(c == "www.youtube.com:443" for c in youtube.proxy_connects)


def test_blocked_videos_wait_a_growing_delay_then_are_retried(
    kb_env: Path, youtube: FakeYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_YOUTUBE_RETRY_BASE_HOURS", "2")
    [video] = scan_channel(kb_env, youtube, ["ip_blocked"])
    ledger = ledger_of(kb_env)

    fetch_transcripts()
    first = statuses(ledger)[video]
    assert first["status"] == "blocked"
    assert first["next_fetch_at"] - first["updated_at"] == timedelta(hours=2)

    assert fetch_transcripts().attempted == 0  # not due again yet

    def make_due() -> None:
        ledger.write(
            Write.update_existing(
                "videos", ("video_id",), [{"video_id": video, "next_fetch_at": START}]
            )
        )

    make_due()
    fetch_transcripts()
    second = statuses(ledger)[video]
    assert second["fetch_attempts"] == 2
    assert second["next_fetch_at"] - second["updated_at"] == timedelta(hours=4)

    youtube.set_transcript(video, "ok", text="finally through")
    make_due()
    assert fetch_transcripts().transcribed == 1
    assert statuses(ledger)[video]["status"] == "transcribed"


def test_circuit_breaker_stops_asking_youtube_after_consecutive_blocks(
    kb_env: Path, youtube: FakeYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_YOUTUBE_BREAKER_THRESHOLD", "3")
    ids = scan_channel(kb_env, youtube, ["ip_blocked"] * 5 + ["ok"] * 2)

    summary = fetch_transcripts()

    assert summary.breaker_opened
    assert summary.attempted == 3
    assert summary.not_attempted == 4
    videos = statuses(ledger_of(kb_env))
    assert [videos[v]["status"] for v in ids] == ["blocked"] * 3 + ["discovered"] * 4
    assert [videos[v]["fetch_attempts"] for v in ids[3:]] == [0] * 4
    watched = [r.query.get("v") for r in youtube.requests if r.path == "/watch"]
    assert set(watched) == set(ids[:3])


def test_manual_transcripts_are_preferred_and_languages_follow_the_preference(
    kb_env: Path, youtube: FakeYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    both, generated_only, german_only = scan_channel(kb_env, youtube, ["ok", "ok", "ok"])
    youtube.set_transcript(
        both,
        tracks=[
            CaptionTrack("en", "auto words", manual=False),
            CaptionTrack("en", "typed by a human", manual=True),
        ],
    )
    youtube.set_transcript(generated_only, tracks=[CaptionTrack("en", "asr only", manual=False)])
    youtube.set_transcript(german_only, tracks=[CaptionTrack("de", "nur deutsch", manual=True)])

    fetch_transcripts()

    ledger = ledger_of(kb_env)
    stored = {r["video_id"]: r for r in ledger.rows("SELECT * FROM transcripts")}
    assert stored[both]["text"] == "typed by a human"
    assert stored[both]["is_generated"] is False
    assert stored[generated_only]["text"] == "asr only"
    assert stored[generated_only]["is_generated"] is True
    assert statuses(ledger)[german_only]["status"] == "no_transcript"

    # Asked again with German allowed, the German transcript is taken.
    ledger.write(
        Write.update_existing(
            "videos", ("video_id",), [{"video_id": german_only, "status": "discovered"}]
        )
    )
    monkeypatch.setenv("KB_YOUTUBE_LANGUAGES", "en,de")
    fetch_transcripts()
    german = ledger.rows("SELECT language, text FROM transcripts WHERE video_id = ?", [german_only])
    assert german == [{"language": "de", "text": "nur deutsch"}]


def test_pipeline_scans_then_fetches(kb_env: Path, youtube: FakeYouTube) -> None:
    youtube.add_channel(CHANNEL, "Fetcher")
    video = youtube.add_video(CHANNEL, published=START, transcript_text="the whole pipeline")
    (kb_env / "creators.yaml").write_text(
        yaml.safe_dump({"creators": [{"channel_id": CHANNEL, "name": "Fetcher"}]})
    )

    summary = pipeline()

    assert (summary.scan.new_videos, summary.fetch.transcribed) == (1, 1)
    texts = ledger_of(kb_env).rows("SELECT video_id, text FROM transcripts")
    assert texts == [{"video_id": video, "text": "the whole pipeline"}]
