"""The scan flow against a YouTube-shaped server reached through a proxy with a private CA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prefect.exceptions import ParameterTypeError

from blocks import BLOCK_NAME
from blocks.youtube import YouTubeSettings
from flows.fetch import fetch_transcripts
from flows.pipeline import pipeline
from flows.scan import scan_creators
from tests.conftest import ledger_of
from tests.servers.youtube import CaptionTrack, FakeYouTube
from tests.test_ledger import held

pytestmark = pytest.mark.usefixtures("prefect_api")

ALICE = "UCaliceaaaaaaaaaaaaaaaaa"
BOB = "UCbobbbbbbbbbbbbbbbbbbbb"
CAROL = "UCcarolccccccccccccccccc"


def write_roster(path: Path, creators: list[dict[str, object]]) -> None:
    path.write_text(yaml.safe_dump({"creators": creators}), encoding="utf-8")


def add_videos(youtube: FakeYouTube, channel_id: str, count: int, start: datetime) -> list[str]:
    return [
        youtube.add_video(channel_id, title=f"video {i}", published=start + timedelta(hours=i))
        for i in range(count)
    ]


def feed_requests(youtube: FakeYouTube, channel_id: str) -> list:
    return [
        r
        for r in youtube.requests
        if r.path == "/feeds/videos.xml" and r.query.get("channel_id") == channel_id
    ]


def test_scan_records_new_videos_once_and_rescans_conditionally(
    kb_env: Path, youtube: FakeYouTube
) -> None:
    youtube.add_channel(ALICE, "Alice")
    youtube.add_channel(BOB, "Bob", handle="@bobmakes")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    alice_videos = add_videos(youtube, ALICE, 3, start)
    bob_videos = add_videos(youtube, BOB, 2, start)
    write_roster(
        kb_env / "creators.yaml",
        [
            {"channel_id": ALICE, "name": "Alice", "priority": "critical"},
            {"handle": "@bobmakes", "name": "Bob", "priority": "low"},
        ],
    )

    first = scan_creators()

    assert first.creators_due == 2
    assert first.new_videos == 5
    assert first.failures == {}
    ledger = ledger_of(kb_env)
    rows = ledger.rows("SELECT video_id, channel_id, status, source, title FROM videos")
    assert sorted(r["video_id"] for r in rows) == sorted(alice_videos + bob_videos)
    assert {r["status"] for r in rows} == {"discovered"}
    assert {r["source"] for r in rows} == {"feed"}
    creators = {r["channel_id"]: r for r in ledger.rows("SELECT * FROM creators")}
    assert creators[BOB]["handle"] == "@bobmakes"  # the handle was resolved to Bob's id
    assert creators[ALICE]["feed_etag"]
    assert youtube.proxy_connects and all(
        c == "www.youtube.com:443" for c in youtube.proxy_connects
    )

    # Not due yet: nothing is read.
    assert scan_creators().creators_due == 0

    # Forced: both feeds are asked conditionally, answer 304, and nothing is added twice.
    handle_lookups = [r for r in youtube.requests if r.path == "/@bobmakes"]
    again = scan_creators(force=True)
    assert again.new_videos == 0
    assert again.feeds_unchanged == 2
    for channel in (ALICE, BOB):
        last = feed_requests(youtube, channel)[-1]
        assert last.headers.get("if-none-match") == creators[channel]["feed_etag"]
        assert last.status == 304
    assert ledger.rows("SELECT count(*) AS n FROM videos")[0]["n"] == 5
    assert [r for r in youtube.requests if r.path == "/@bobmakes"] == handle_lookups
    events = ledger.rows("SELECT outcome, count(*) AS n FROM scan_events GROUP BY 1 ORDER BY 1")
    assert events == [{"outcome": "not_modified", "n": 2}, {"outcome": "ok", "n": 2}]

    # A new upload changes the feed: only it is added.
    newest = youtube.add_video(ALICE, title="brand new", published=start + timedelta(days=5))
    third = scan_creators(force=True)
    assert third.new_videos == 1
    assert ledger.rows("SELECT video_id FROM videos WHERE title = 'brand new'") == [
        {"video_id": newest}
    ]


def test_flaky_feed_is_retried_and_a_dead_one_is_left_for_the_next_scan(
    kb_env: Path, youtube: FakeYouTube
) -> None:
    youtube.add_channel(ALICE, "Alice")
    youtube.add_channel(BOB, "Bob")
    add_videos(youtube, ALICE, 2, datetime(2026, 11, 1, tzinfo=UTC))
    add_videos(youtube, BOB, 2, datetime(2026, 11, 1, tzinfo=UTC))
    youtube.fail_feed(ALICE, [500, 500])  # recovers on the third try
    youtube.fail_feed(BOB, [404] * 4)  # down for the first try and all 3 retries
    write_roster(
        kb_env / "creators.yaml",
        [{"channel_id": ALICE, "name": "Alice"}, {"channel_id": BOB, "name": "Bob"}],
    )

    summary = scan_creators()

    assert summary.new_videos == 2
    assert list(summary.failures) == [BOB]
    assert "HTTP 404" in summary.failures[BOB]
    assert [r.status for r in feed_requests(youtube, ALICE)] == [500, 500, 200]
    assert [r.status for r in feed_requests(youtube, BOB)] == [404] * 4  # 1 try + 3 retries
    ledger = ledger_of(kb_env)
    states = {r["channel_id"]: r for r in ledger.rows("SELECT * FROM creators")}
    assert states[ALICE]["last_scanned_at"] is not None
    assert states[BOB]["last_scanned_at"] is None  # still due
    failed = ledger.rows("SELECT http_status, detail FROM scan_events WHERE outcome = 'failed'")
    assert failed == [{"http_status": 404, "detail": failed[0]["detail"]}]
    assert BOB in failed[0]["detail"]

    # The next scan picks Bob up again, his feed now back.
    assert scan_creators().new_videos == 2


def test_full_feed_of_new_videos_is_a_possible_gap_filled_from_the_data_api(
    kb_env: Path, youtube: FakeYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    youtube.add_channel(CAROL, "Carol")
    start = datetime(2026, 10, 1, tzinfo=UTC)
    add_videos(youtube, CAROL, 3, start)
    write_roster(kb_env / "creators.yaml", [{"channel_id": CAROL, "name": "Carol"}])
    assert scan_creators().new_videos == 3

    # 20 uploads since: the feed shows only the newest 15, all new.
    missed = add_videos(youtube, CAROL, 20, start + timedelta(days=3))

    without_key = scan_creators(force=True)
    assert without_key.possible_gaps == [CAROL]
    assert without_key.new_videos == 15
    ledger = ledger_of(kb_env)
    gap = ledger.rows("SELECT possible_gap, gap_filled FROM scan_events ORDER BY ts DESC LIMIT 1")
    assert gap == [{"possible_gap": True, "gap_filled": 0}]

    # With a Data API key the next gap is filled by paging the uploads playlist.
    more = add_videos(youtube, CAROL, 17, start + timedelta(days=6))
    monkeypatch.setenv("YOUTUBE_API_KEY", youtube.data_api_key)
    with_key = scan_creators(force=True)
    assert with_key.possible_gaps == [CAROL]
    assert with_key.gap_filled == 2
    assert with_key.new_videos == 17
    stored = {
        r["video_id"]: r["source"] for r in ledger.rows("SELECT video_id, source FROM videos")
    }
    assert set(more) <= set(stored)
    assert sorted(stored[v] for v in more).count("data_api") == 2
    assert set(missed[:5]).isdisjoint(stored)  # the first gap stays recorded, not invented
    data_api = [r for r in youtube.requests if r.path == "/youtube/v3/playlistItems"]
    assert data_api and all("key" not in r.query for r in data_api)  # key sent as a header


def test_a_scan_waits_for_a_notebook_that_holds_the_ledger_briefly(
    kb_env: Path, youtube: FakeYouTube
) -> None:
    youtube.add_channel(ALICE, "Alice")
    add_videos(youtube, ALICE, 2, datetime(2026, 11, 1, tzinfo=UTC))
    write_roster(kb_env / "creators.yaml", [{"channel_id": ALICE, "name": "Alice"}])
    ledger = ledger_of(kb_env)
    ledger.migrate()

    with held(ledger.path, seconds=2) as holder:
        summary = scan_creators()
        assert holder.poll() is not None  # the run could only finish after the holder left

    assert summary.new_videos == 2
    assert len(ledger.rows("SELECT * FROM videos")) == 2


def test_a_configured_proxy_url_carries_every_youtube_request(
    kb_env: Path, youtube: FakeYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("KB_YOUTUBE_PROXY_URL", youtube.proxy_url)
    youtube.add_channel(BOB, "Bob", handle="@bobmakes")
    add_videos(youtube, BOB, 1, datetime(2026, 11, 1, tzinfo=UTC))
    write_roster(kb_env / "creators.yaml", [{"handle": "@bobmakes", "name": "Bob"}])

    summary = pipeline()

    assert (summary.scan.new_videos, summary.fetch.transcribed) == (1, 1)
    # www.youtube.com resolves nowhere here: every request went through the proxy.
    paths = {request.path for request in youtube.requests}
    assert {"/@bobmakes", "/feeds/videos.xml", "/watch", "/youtubei/v1/player"} <= paths
    assert set(youtube.proxy_connects) == {"www.youtube.com:443"}


def test_a_saved_youtube_block_wins_over_the_environment(
    kb_env: Path, youtube: FakeYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_YOUTUBE_LANGUAGES", "en")
    youtube.add_channel(CAROL, "Carol")
    video = youtube.add_video(CAROL, published=datetime(2026, 11, 1, tzinfo=UTC))
    youtube.set_transcript(video, tracks=[CaptionTrack("de", "aus dem Block")])
    write_roster(kb_env / "creators.yaml", [{"channel_id": CAROL, "name": "Carol"}])
    block = YouTubeSettings(languages=["de"], pause_seconds=0, feed_retry_delay_seconds=0.05)
    block.save(BLOCK_NAME, overwrite=True)
    try:
        assert pipeline().fetch.transcribed == 1
    finally:
        YouTubeSettings.delete(BLOCK_NAME)
    rows = ledger_of(kb_env).rows("SELECT language, text FROM transcripts")
    assert rows == [{"language": "de", "text": "aus dem Block"}]


def test_flow_parameters_are_validated_like_the_ui_form(kb_env: Path) -> None:
    with pytest.raises(ParameterTypeError, match="limit"):
        fetch_transcripts(limit=0)
