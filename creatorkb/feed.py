"""Channel feeds: conditional GET of YouTube's Atom feed, parsing, and gap filling."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpx

from creatorkb.errors import FeedUnavailable, GapFillFailed

FEED_URL = "https://www.youtube.com/feeds/videos.xml"
FEED_SIZE = 15  # YouTube lists only the latest 15 uploads
PLAYLIST_ITEMS_URL = "https://www.googleapis.com/youtube/v3/playlistItems"
_NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "yt": "http://www.youtube.com/xml/schemas/2015",
    "media": "http://search.yahoo.com/mrss/",
}


@dataclass(frozen=True)
class FeedEntry:
    """One video as a feed (or the uploads playlist) lists it."""

    video_id: str
    channel_id: str
    title: str
    published_at: datetime | None
    description: str


@dataclass(frozen=True)
class FeedRead:
    """The outcome of one conditional GET of a channel feed."""

    channel_id: str
    outcome: Literal["ok", "not_modified"]
    entries: tuple[FeedEntry, ...]
    etag: str | None
    last_modified: str | None
    http_status: int
    response_bytes: int


def read_feed(
    client: httpx.Client,
    channel_id: str,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FeedRead:
    """GET the channel's feed, sending the validators of the last read."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        response = client.get(FEED_URL, params={"channel_id": channel_id}, headers=headers)
    except httpx.HTTPError as error:
        raise FeedUnavailable(channel_id, f"{type(error).__name__}: {error}") from error
    size = len(response.content)
    if response.status_code == 304:
        return FeedRead(channel_id, "not_modified", (), etag, last_modified, 304, size)
    if response.status_code != 200:
        raise FeedUnavailable(channel_id, f"HTTP {response.status_code}", response.status_code)
    try:
        entries = parse_feed(response.content)
    except ET.ParseError as error:
        raise FeedUnavailable(channel_id, f"unparsable feed: {error}", 200) from error
    return FeedRead(
        channel_id,
        "ok",
        tuple(entries),
        response.headers.get("ETag"),
        response.headers.get("Last-Modified"),
        200,
        size,
    )


class FeedReader:
    """Reads feeds from many threads through one client, at most `concurrency` at once."""

    def __init__(self, client: httpx.Client, concurrency: int) -> None:
        self.client = client
        self._slots = threading.BoundedSemaphore(concurrency)

    def read(self, channel_id: str, etag: str | None, last_modified: str | None) -> FeedRead:
        with self._slots:
            return read_feed(self.client, channel_id, etag, last_modified)


def parse_feed(xml: bytes) -> list[FeedEntry]:
    """The entries of a channel's Atom feed, newest first.

    The feed-level channel id drops the leading "UC"; each entry carries the full id,
    so ids are taken from the entries.
    """
    root = ET.fromstring(xml)
    entries = []
    for entry in root.findall("atom:entry", _NS):
        video_id = entry.findtext("yt:videoId", namespaces=_NS)
        channel_id = entry.findtext("yt:channelId", namespaces=_NS)
        if not video_id or not channel_id:
            continue
        published = entry.findtext("atom:published", namespaces=_NS)
        entries.append(
            FeedEntry(
                video_id=video_id.strip(),
                channel_id=channel_id.strip(),
                title=(entry.findtext("atom:title", default="", namespaces=_NS)).strip(),
                published_at=datetime.fromisoformat(published) if published else None,
                description=entry.findtext(
                    "media:group/media:description", default="", namespaces=_NS
                ),
            )
        )
    return entries


def is_possible_gap(read: FeedRead, new_video_ids: set[str], scanned_before: bool) -> bool:
    """A full feed of only new videos after an earlier scan: uploads may have been missed."""
    return (
        scanned_before
        and len(read.entries) >= FEED_SIZE
        and all(entry.video_id in new_video_ids for entry in read.entries)
    )


def page_uploads(
    client: httpx.Client,
    api_key: str,
    channel_id: str,
    known_video_ids: set[str],
    max_videos: int,
) -> list[FeedEntry]:
    """Uploads newer than the newest known video, from the Data API's uploads playlist."""
    playlist_id = "UU" + channel_id[2:]
    found: list[FeedEntry] = []
    page_token: str | None = None
    while len(found) < max_videos:
        params = {
            "part": "snippet,contentDetails",
            "playlistId": playlist_id,
            "maxResults": "50",
        }
        if page_token:
            params["pageToken"] = page_token
        try:
            # The key goes in a header, not the URL, so it never lands in a logged URL.
            response = client.get(
                PLAYLIST_ITEMS_URL, params=params, headers={"X-Goog-Api-Key": api_key}
            )
        except httpx.HTTPError as error:
            raise GapFillFailed(f"Data API unreachable for {channel_id}: {error}") from error
        if response.status_code != 200:
            raise GapFillFailed(
                f"Data API answered {response.status_code} for {channel_id}: "
                f"{_google_error(response)}"
            )
        body = response.json()
        for item in body.get("items", []):
            snippet = item.get("snippet", {})
            video_id = item.get("contentDetails", {}).get("videoId") or snippet.get(
                "resourceId", {}
            ).get("videoId")
            if not video_id:
                continue
            if video_id in known_video_ids or len(found) >= max_videos:
                return found
            published = item.get("contentDetails", {}).get("videoPublishedAt") or snippet.get(
                "publishedAt"
            )
            found.append(
                FeedEntry(
                    video_id=video_id,
                    channel_id=channel_id,
                    title=snippet.get("title", ""),
                    published_at=datetime.fromisoformat(published) if published else None,
                    description=snippet.get("description", ""),
                )
            )
        page_token = body.get("nextPageToken")
        if not page_token:
            break
    return found


def _google_error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
