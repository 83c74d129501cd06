"""The fake YouTube speaks the real protocols to the real clients, via proxy and private CA."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import requests
import youtube_transcript_api as yta
from youtube_transcript_api import YouTubeTranscriptApi

from tests.servers.youtube import FEED_LIMIT, CaptionTrack, FakeYouTube

CHANNEL = "UCx5XG1OV2P6uZZ5FSM9Ttw0"
FEED = f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL}"
PLAYLIST_ITEMS = "https://www.googleapis.com/youtube/v3/playlistItems"
NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "yt": "http://www.youtube.com/xml/schemas/2015",
    "media": "http://search.yahoo.com/mrss/",
}
START = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def yt(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeYouTube]:
    """A running fake whose proxy and CA every client in the test picks up from the env."""
    with FakeYouTube() as server:
        for name, value in server.proxy_env().items():
            monkeypatch.setenv(name, value)
        server.add_channel(CHANNEL, "Creator & Co", handle="@CreatorCo")
        yield server


def add_videos(yt: FakeYouTube, count: int) -> list[str]:
    """Publish `count` videos a day apart; return their ids newest first."""
    ids = [yt.add_video(CHANNEL, published=START + timedelta(days=i)) for i in range(count)]
    return ids[::-1]


def fetch(video_id: str, languages: tuple[str, ...] = ("en",)) -> yta.FetchedTranscript:
    return YouTubeTranscriptApi().fetch(video_id, languages=languages)


# --- feeds ----------------------------------------------------------------------------------


def test_feed_is_atom_through_the_proxy_and_supports_etag(yt: FakeYouTube) -> None:
    video_id = yt.add_video(CHANNEL, title="Hello <World>", published=START, description="Desc")
    with httpx.Client() as client:
        first = client.get(FEED)
        again = client.get(FEED, headers={"If-None-Match": first.headers["ETag"]})

    assert first.status_code == 200
    feed = ET.fromstring(first.content)
    assert feed.findtext("yt:channelId", namespaces=NS) == CHANNEL[2:]
    assert feed.findtext("atom:id", namespaces=NS) == f"yt:channel:{CHANNEL[2:]}"
    [entry] = feed.findall("atom:entry", NS)
    assert entry.findtext("yt:videoId", namespaces=NS) == video_id
    assert entry.findtext("yt:channelId", namespaces=NS) == CHANNEL
    assert entry.findtext("atom:title", namespaces=NS) == "Hello <World>"
    assert entry.findtext("atom:published", namespaces=NS) == "2025-11-01T12:00:00+00:00"
    assert entry.findtext("media:group/media:description", namespaces=NS) == "Desc"

    assert again.status_code == 304
    assert again.content == b""
    assert "www.youtube.com:443" in yt.proxy_connects
    full, not_modified = (r for r in yt.requests if r.path == "/feeds/videos.xml")
    assert not_modified.headers["IF-NONE-MATCH"] == first.headers["ETag"]
    assert (full.status, not_modified.status) == (200, 304)
    assert not_modified.response_bytes < full.response_bytes / 4


def test_feed_if_modified_since_and_new_videos(yt: FakeYouTube) -> None:
    add_videos(yt, 1)
    first = httpx.get(FEED)
    since = {"If-Modified-Since": first.headers["Last-Modified"]}
    assert httpx.get(FEED, headers=since).status_code == 304

    yt.add_video(CHANNEL, published=START + timedelta(days=30))
    assert httpx.get(FEED, headers=since).status_code == 200
    assert httpx.get(FEED, headers={"If-None-Match": first.headers["ETag"]}).status_code == 200


def test_feed_lists_latest_15_newest_first(yt: FakeYouTube) -> None:
    ids = add_videos(yt, FEED_LIMIT + 5)
    feed = ET.fromstring(httpx.get(FEED).content)
    listed = [e.findtext("yt:videoId", namespaces=NS) for e in feed.findall("atom:entry", NS)]
    assert listed == ids[:FEED_LIMIT]


def test_feed_failures_unknown_channels_and_latency(yt: FakeYouTube) -> None:
    yt.fail_feed(CHANNEL, [500, 503])
    assert [httpx.get(FEED).status_code for _ in range(3)] == [500, 503, 200]
    yt.fail_feed(CHANNEL, [404] * 2)
    assert [httpx.get(FEED).status_code for _ in range(3)] == [404, 404, 200]
    assert httpx.get(FEED.replace(CHANNEL, "UCunknown")).status_code == 404

    yt.feed_latency_s = 0.2
    started = time.monotonic()
    httpx.get(FEED)
    assert time.monotonic() - started >= 0.2


# --- transcripts ----------------------------------------------------------------------------


def test_transcript_text_round_trips(yt: FakeYouTube) -> None:
    text = " ".join(f'word{i} it\'s "quoted" & more' for i in range(20))
    video_id = yt.add_video(CHANNEL, transcript_text=text)
    transcript = fetch(video_id)
    assert len(transcript) > 1
    assert " ".join(s.text for s in transcript) == text
    assert (transcript.language_code, transcript.is_generated) == ("en", False)
    watch, player, timedtext = yt.requests
    assert watch.query == {"v": video_id}
    assert player.method == "POST" and b'"videoId": "' + video_id.encode() in player.body
    assert timedtext.path == "/api/timedtext" and timedtext.query["v"] == video_id
    assert yt.proxy_connects == ["www.youtube.com:443"]  # one kept-alive tunnel for all three


def test_default_transcript_is_the_recorded_one(yt: FakeYouTube) -> None:
    transcript = fetch(yt.add_video(CHANNEL))
    assert [s.text for s in transcript] == [
        "Hey, this is just a test",
        "this is not the original transcript",
        "just something shorter, I made up for testing",
    ]


def test_generated_and_non_english_tracks(yt: FakeYouTube) -> None:
    video_id = yt.add_video(CHANNEL)
    yt.set_transcript(video_id, text="auto words", manual=False)
    generated = fetch(video_id)
    assert (generated.is_generated, generated.snippets[0].text) == (True, "auto words")

    yt.set_transcript(video_id, tracks=[CaptionTrack("de", "hallo welt")])
    assert fetch(video_id, ("en", "de")).snippets[0].text == "hallo welt"
    with pytest.raises(yta.NoTranscriptFound):
        fetch(video_id)

    both = [CaptionTrack("en", "manual"), CaptionTrack("en", "asr", manual=False)]
    yt.set_transcript(video_id, tracks=both)
    listing = YouTubeTranscriptApi().list(video_id)
    assert listing.find_generated_transcript(["en"]).fetch().snippets[0].text == "asr"
    assert listing.find_manually_created_transcript(["en"]).fetch().snippets[0].text == "manual"


@pytest.mark.parametrize(
    ("scenario", "error"),
    [
        ("transcripts_disabled", yta.TranscriptsDisabled),
        ("no_transcript_found", yta.NoTranscriptFound),
        ("video_unavailable", yta.VideoUnavailable),
        ("age_restricted", yta.AgeRestricted),
        ("unplayable", yta.VideoUnplayable),
        ("request_blocked", yta.RequestBlocked),
        ("ip_blocked", yta.IpBlocked),
        ("recaptcha", yta.IpBlocked),
        ("po_token_required", yta.PoTokenRequired),
        ("request_failed", yta.YouTubeRequestFailed),
    ],
)
def test_transcript_failure_scenarios(
    yt: FakeYouTube, scenario: str, error: type[Exception]
) -> None:
    video_id = yt.add_video(CHANNEL, transcript=scenario)
    with pytest.raises(error) as raised:
        fetch(video_id)
    assert type(raised.value) is error


def test_unknown_and_invalid_video_ids(yt: FakeYouTube) -> None:
    with pytest.raises(yta.VideoUnavailable):
        fetch("AAAAAAAAAAA")
    url = "https://www.youtube.com/watch?v=AAAAAAAAAAA"
    with pytest.raises(yta.InvalidVideoId):
        fetch(url)
    assert yt.requests[-2].query == {"v": url}


def test_consent_flow(yt: FakeYouTube) -> None:
    video_id = yt.add_video(CHANNEL, transcript="consent", transcript_text="after consent")
    assert fetch(video_id).snippets[0].text == "after consent"
    first, second = (r for r in yt.requests if r.path == "/watch")
    assert "CONSENT" not in first.headers.get("Cookie", "")
    assert "CONSENT=YES+cb.20210328-17-p0.de+FX+119" in second.headers["Cookie"]


# --- channel pages and the Data API ---------------------------------------------------------


def test_channel_pages_resolve_handles(yt: FakeYouTube) -> None:
    page = requests.get("https://www.youtube.com/@creatorco", timeout=5)
    assert page.status_code == 200
    assert f'<link rel="canonical" href="https://www.youtube.com/channel/{CHANNEL}">' in page.text
    assert f'"externalId":"{CHANNEL}"' in page.text
    assert f'<meta itemprop="identifier" content="{CHANNEL}">' in page.text
    for path in ("/c/CreatorCo", "/user/CreatorCo/videos", f"/channel/{CHANNEL}"):
        assert CHANNEL in requests.get(f"https://www.youtube.com{path}", timeout=5).text
    assert requests.get("https://www.youtube.com/@nobody", timeout=5).status_code == 404


def test_data_api_pages_through_uploads(yt: FakeYouTube) -> None:
    ids = add_videos(yt, 5)
    params = {
        "part": "snippet,contentDetails",
        "playlistId": "UU" + CHANNEL[2:],
        "maxResults": 2,
        "key": yt.data_api_key,
    }
    seen, pages = [], 0
    with httpx.Client() as client:
        while True:
            body = client.get(PLAYLIST_ITEMS, params=params).raise_for_status().json()
            assert body["kind"] == "youtube#playlistItemListResponse"
            assert body["pageInfo"]["totalResults"] == 5
            for item in body["items"]:
                assert item["snippet"]["channelId"] == CHANNEL
                assert item["snippet"]["resourceId"]["videoId"] == item["contentDetails"]["videoId"]
                seen.append(item["contentDetails"]["videoId"])
            pages += 1
            if "nextPageToken" not in body:
                break
            params["pageToken"] = body["nextPageToken"]
    assert (seen, pages) == (ids, 3)
    assert body["items"][0]["contentDetails"]["videoPublishedAt"] == "2025-11-01T12:00:00Z"
    assert "www.googleapis.com:443" in yt.proxy_connects


def test_data_api_rejects_missing_or_wrong_key(yt: FakeYouTube) -> None:
    params = {"part": "snippet", "playlistId": "UU" + CHANNEL[2:]}
    missing = httpx.get(PLAYLIST_ITEMS, params=params)
    wrong = httpx.get(PLAYLIST_ITEMS, params={**params, "key": "nope"})
    assert missing.status_code == 403
    assert missing.json()["error"]["errors"][0]["reason"] == "forbidden"
    assert wrong.status_code == 400
    assert wrong.json()["error"]["message"] == "API key not valid. Please pass a valid API key."
    unknown = {**params, "playlistId": "UUnope", "key": yt.data_api_key}
    assert httpx.get(PLAYLIST_ITEMS, params=unknown).status_code == 404


# --- the proxy ------------------------------------------------------------------------------


def test_proxy_only_tunnels(yt: FakeYouTube) -> None:
    with httpx.Client(proxy=yt.proxy_url) as client:
        assert client.get("http://www.youtube.com/feeds/videos.xml").status_code == 502
    with pytest.raises(httpx.ConnectError), httpx.Client(trust_env=False) as client:
        client.get(f"{yt.url}/@CreatorCo")  # the private CA is not trusted without the env
