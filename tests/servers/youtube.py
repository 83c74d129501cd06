"""A fake YouTube over real HTTPS, reached through a real HTTP CONNECT proxy with a private CA.

Serves channel feeds, channel pages, the watch/innertube/timedtext transcript protocol (with
the recorded responses shipped in youtube-transcript-api) and the Data API v3 uploads listing.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import html
import io
import json
import random
import re
import shutil
import socket
import ssl
import string
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape

import trustme

HOSTNAMES = (
    "www.youtube.com",
    "youtube.com",
    "m.youtube.com",
    "www.googleapis.com",
    "127.0.0.1",
    "localhost",
)
FEED_LIMIT = 15
SCENARIOS = (
    "ok",
    "transcripts_disabled",
    "no_transcript_found",
    "video_unavailable",
    "age_restricted",
    "unplayable",
    "request_blocked",
    "ip_blocked",
    "recaptcha",
    "po_token_required",
    "request_failed",
    "consent",
)
# Scenarios whose innertube (player) answer is a recorded response, served as is.
_RECORDED_PLAYER = {
    "transcripts_disabled": "youtube_transcripts_disabled",
    "video_unavailable": "youtube_video_unavailable",
    "age_restricted": "youtube_age_restricted",
    "unplayable": "youtube_unplayable",
    "request_blocked": "youtube_request_blocked",
    "po_token_required": "youtube_po_token_required",
}
_VIDEO_ID_CHARS = string.ascii_letters + string.digits + "-_"
_WORDS_PER_SNIPPET = 12
_SECONDS_PER_WORD = 0.4
_INVALID_KEY = "API key not valid. Please pass a valid API key."
_JSON = "application/json; charset=UTF-8"
_XML = "text/xml; charset=UTF-8"


@functools.cache
def _asset(name: str) -> bytes:
    """Bytes of a recorded response shipped in youtube-transcript-api's test assets."""
    return (resources.files("youtube_transcript_api.test") / "assets" / name).read_bytes()


@functools.cache
def _player(name: str) -> dict[str, Any]:
    """A recorded innertube player response (shared: treat as read-only)."""
    return json.loads(_asset(f"{name}.innertube.json.static"))


@functools.cache
def _innertube_api_key() -> str:
    """The INNERTUBE_API_KEY embedded in the recorded watch page."""
    page = _asset("youtube.html.static").decode()
    return re.search(r'"INNERTUBE_API_KEY":\s*"([a-zA-Z0-9_-]+)"', page).group(1)


def _recorded_captions() -> dict[str, Any]:
    return _player("youtube")["captions"]["playerCaptionsTracklistRenderer"]


@functools.cache
def _language_names() -> dict[str, str]:
    """Language code to English name, from the recorded translation languages."""
    return {
        lang["languageCode"]: lang["languageName"]["runs"][0]["text"]
        for lang in _recorded_captions()["translationLanguages"]
    }


@functools.cache
def _timedtext_query() -> dict[str, str]:
    """Query of the recorded manual English caption track URL (free of `&exp=xpe`)."""
    tracks = _recorded_captions()["captionTracks"]
    track = next(t for t in tracks if t["languageCode"] == "en" and "kind" not in t)
    return dict(parse_qsl(urlsplit(track["baseUrl"]).query))


def _utc(moment: datetime) -> datetime:
    """Aware UTC datetime at second precision (naive values are taken as UTC)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=0)


def _error_page(status: int) -> bytes:
    return (
        f"<!DOCTYPE html><html><title>Error {status}</title><p>Error {status}</p></html>".encode()
    )


def _google_error(status: int, message: str, reason: str) -> _Response:
    """A Google API error in the JSON shape the real APIs use."""
    state = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}[status]
    error = {"message": message, "domain": "global", "reason": reason}
    body = {"error": {"code": status, "message": message, "errors": [error], "status": state}}
    return _Response(status, json.dumps(body, indent=2).encode(), _JSON)


class Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (keys are stored lower-case)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((key.lower(), value) for key, value in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class RecordedRequest:
    """One request the fake YouTube received, with the status and size of its response."""

    method: str
    host: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes
    status: int = 0
    response_bytes: int = 0


@dataclass(frozen=True)
class CaptionTrack:
    """A caption track; `text=None` serves the recorded transcript.xml.static."""

    language_code: str = "en"
    text: str | None = None
    manual: bool = True
    translatable: bool = True


@dataclass
class Video:
    """A video listed in its channel's feed and uploads playlist."""

    video_id: str
    channel_id: str
    title: str
    published: datetime
    description: str


@dataclass
class Channel:
    """A channel with its videos (newest first) and last modification (epoch seconds)."""

    channel_id: str
    name: str
    handle: str | None
    created: datetime
    videos: list[Video] = field(default_factory=list)
    modified: int = 0


@dataclass
class _Transcript:
    scenario: str
    tracks: list[CaptionTrack]


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class _QuietServer(ThreadingHTTPServer):
    """Threading server that ignores clients hanging up or failing the TLS handshake."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeYouTube(_QuietServer):
    """HTTPS fake of YouTube on 127.0.0.1 plus a CONNECT proxy (`proxy_url`) leading to it."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self._tmp = Path(tempfile.mkdtemp(prefix="fake-youtube-"))
        self.ca_bundle_path = str(self._tmp / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_bundle_path)
        self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*HOSTNAMES).configure_cert(self.ssl_context)
        super().__init__(("127.0.0.1", 0), _YouTubeHandler)
        self.port: int = self.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.proxy = _ConnectProxy(self.port)
        self.proxy_url = f"http://127.0.0.1:{self.proxy.server_address[1]}"
        self.data_api_key = "AIzaSyFAKE_youtube_data_api_key_0000000"
        self.feed_latency_s = 0.0
        # Cleared, feed requests wait until it is set again: lets a test act mid-scan.
        self.feeds_open = threading.Event()
        self.feeds_open.set()
        self.feed_requested = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._channels: dict[str, Channel] = {}
        self._videos: dict[str, Video] = {}
        self._transcripts: dict[str, _Transcript] = {}
        self._feed_failures: dict[str, list[int]] = {}
        self._rng = random.Random(0)
        self._serving: list[threading.Thread] = []

    @property
    def proxy_connects(self) -> list[str]:
        """Every CONNECT target (`host:port`) the proxy was asked for, in order."""
        return self.proxy.connects

    def proxy_env(self) -> dict[str, str]:
        """Environment routing requests/httpx through the proxy and trusting the private CA."""
        return {
            "HTTPS_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "NO_PROXY": "",
            "no_proxy": "",
            "REQUESTS_CA_BUNDLE": self.ca_bundle_path,
            "SSL_CERT_FILE": self.ca_bundle_path,
        }

    def start(self) -> FakeYouTube:
        """Serve YouTube and the proxy from background threads."""
        for server in (self, self.proxy):
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
            thread.start()
            self._serving.append(thread)
        return self

    def stop(self) -> None:
        """Close open tunnels, stop both servers and remove the CA bundle."""
        self.proxy.close_tunnels()
        for server in (self.proxy, self):
            if self._serving:
                server.shutdown()
            server.server_close()
        self._serving.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> FakeYouTube:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- test API -------------------------------------------------------------------------

    def add_channel(self, channel_id: str, name: str, handle: str | None = None) -> None:
        """Register a channel (`UC...`), reachable as `/@handle` when a handle is given."""
        if not channel_id.startswith("UC"):
            raise ValueError(f"channel ids start with 'UC': {channel_id!r}")
        handle = handle.removeprefix("@") if handle else None
        channel = Channel(channel_id, name, handle, _utc(datetime.now(UTC)))
        with self._lock:
            self._channels[channel_id] = channel
            self._touch(channel)

    def add_video(
        self,
        channel_id: str,
        video_id: str | None = None,
        *,
        title: str | None = None,
        published: datetime | None = None,
        description: str = "",
        transcript: str = "ok",
        transcript_text: str | None = None,
    ) -> str:
        """Publish a video on a channel; return its id (a random valid one when None)."""
        with self._lock:
            channel = self._channels[channel_id]
            video_id = video_id or self._new_video_id()
            video = Video(
                video_id,
                channel_id,
                title or f"Video {len(channel.videos) + 1}",
                _utc(published or datetime.now(UTC)),
                description,
            )
            others = [v for v in channel.videos if v.video_id != video_id]
            channel.videos = sorted([*others, video], key=lambda v: v.published, reverse=True)
            self._videos[video_id] = video
            self._touch(channel)
        self.set_transcript(video_id, transcript, text=transcript_text)
        return video_id

    def set_transcript(
        self,
        video_id: str,
        scenario: str = "ok",
        *,
        text: str | None = None,
        language_code: str = "en",
        manual: bool = True,
        tracks: Iterable[CaptionTrack] | None = None,
    ) -> None:
        """Choose what the transcript endpoints answer for a video (one of SCENARIOS).

        Without `tracks`, "ok"/"consent" offer one track (`language_code`, `manual`, `text`)
        and "no_transcript_found" offers only a non-translatable Dutch track.
        """
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown transcript scenario {scenario!r}")
        if tracks is None:
            if scenario == "no_transcript_found":
                tracks = [CaptionTrack("nl", text, translatable=False)]
            else:
                tracks = [CaptionTrack(language_code, text, manual)]
        with self._lock:
            self._transcripts[video_id] = _Transcript(scenario, list(tracks))

    def fail_feed(self, channel_id: str, statuses: Iterable[int]) -> None:
        """Answer the next feed requests for a channel with these statuses, in order."""
        with self._lock:
            self._feed_failures.setdefault(channel_id, []).extend(statuses)

    # --- serving --------------------------------------------------------------------------

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        """Do the TLS handshake in the worker thread, then serve the connection."""
        request.settimeout(_YouTubeHandler.timeout)
        with self.ssl_context.wrap_socket(request, server_side=True) as tls:
            super().finish_request(tls, client_address)

    def respond(self, request: RecordedRequest) -> _Response:
        """Route a request to the endpoint for its host, method and path."""
        if request.host.split(":")[0] == "www.googleapis.com":
            if request.method == "GET" and request.path == "/youtube/v3/playlistItems":
                return self._playlist_items(request.query, request.headers)
            return _Response(404, _error_page(404))
        if request.method == "POST" and request.path == "/youtubei/v1/player":
            return self._innertube(request)
        if request.method != "GET":
            return _Response(405, _error_page(405))
        if request.path == "/feeds/videos.xml":
            return self._feed(request)
        if request.path == "/watch":
            return self._watch(request)
        if request.path == "/api/timedtext":
            return self._timedtext(request.query)
        return self._channel_page(request.path)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _new_video_id(self) -> str:
        while True:
            video_id = "".join(self._rng.choice(_VIDEO_ID_CHARS) for _ in range(11))
            if video_id not in self._videos:
                return video_id

    @staticmethod
    def _touch(channel: Channel) -> None:
        """Advance Last-Modified strictly, so second-resolution dates always change."""
        channel.modified = max(int(time.time()), channel.modified + 1)

    # --- feeds ----------------------------------------------------------------------------

    def _feed(self, request: RecordedRequest) -> _Response:
        self.feed_requested.set()
        self.feeds_open.wait(timeout=120)
        time.sleep(self.feed_latency_s)
        channel_id = request.query.get("channel_id", "")
        with self._lock:
            failures = self._feed_failures.get(channel_id)
            if failures:
                status = failures.pop(0)
                return _Response(status, _error_page(status))
            channel = self._channels.get(channel_id)
            if channel is None:
                return _Response(404, _error_page(404))
            body = _feed_xml(channel).encode()
            modified = channel.modified
        headers = {
            "ETag": f'"{hashlib.sha256(body).hexdigest()[:32]}"',
            "Last-Modified": format_datetime(datetime.fromtimestamp(modified, UTC), usegmt=True),
        }
        if _not_modified(request.headers, headers["ETag"], modified):
            return _Response(304, headers=headers)
        return _Response(200, body, _XML, headers)

    # --- channel pages --------------------------------------------------------------------

    def _channel_page(self, path: str) -> _Response:
        kind, _, rest = unquote(path).strip("/").partition("/")
        name = rest.split("/")[0]
        with self._lock:
            if kind.startswith("@"):
                channel = self._channel_by_handle(kind[1:])
            elif kind in ("c", "user"):
                channel = self._channel_by_handle(name)
            else:
                channel = self._channels.get(name) if kind == "channel" else None
        if channel is None:
            return _Response(404, _error_page(404))
        return _Response(200, _channel_html(channel).encode())

    def _channel_by_handle(self, handle: str) -> Channel | None:
        matches = (
            c for c in self._channels.values() if c.handle and c.handle.lower() == handle.lower()
        )
        return next(matches, None)

    # --- transcripts ----------------------------------------------------------------------

    def _transcript(self, video_id: str) -> _Transcript | None:
        with self._lock:
            return self._transcripts.get(video_id)

    def _watch(self, request: RecordedRequest) -> _Response:
        transcript = self._transcript(request.query.get("v", ""))
        scenario = transcript.scenario if transcript else "ok"
        if scenario == "ip_blocked":
            return _Response(429, _asset("youtube_too_many_requests.html.static"))
        if scenario == "recaptcha":
            return _Response(200, _asset("youtube_too_many_requests.html.static"))
        if scenario == "request_failed":
            return _Response(500, _error_page(500))
        if scenario == "consent" and "CONSENT=YES+" not in request.headers.get("cookie", ""):
            return _Response(200, _asset("youtube_consent_page.html.static"))
        return _Response(200, _asset("youtube.html.static"))

    def _innertube(self, request: RecordedRequest) -> _Response:
        if request.query.get("key") != _innertube_api_key():
            return _google_error(400, _INVALID_KEY, "badRequest")
        try:
            video_id = str(json.loads(request.body)["videoId"])
        except (ValueError, KeyError, TypeError):
            return _google_error(400, "Request contains an invalid argument.", "badRequest")
        transcript = self._transcript(video_id)
        if transcript is None:
            data = _player("youtube_video_unavailable")
        elif transcript.scenario in _RECORDED_PLAYER:
            data = _player(_RECORDED_PLAYER[transcript.scenario])
        else:
            with self._lock:
                video = self._videos.get(video_id)
            data = _player_with_tracks(video_id, transcript.tracks, video)
        return _Response(200, json.dumps(data).encode(), _JSON)

    def _timedtext(self, query: dict[str, str]) -> _Response:
        transcript = self._transcript(query.get("v", ""))
        manual = query.get("kind") != "asr"
        tracks = transcript.tracks if transcript else []
        wanted = (t for t in tracks if t.language_code == query.get("lang") and t.manual == manual)
        track = next(wanted, None)
        if track is None:
            return _Response(404, _error_page(404))
        body = _asset("transcript.xml.static") if track.text is None else _timedtext_xml(track.text)
        return _Response(200, body, _XML)

    # --- Data API v3 ----------------------------------------------------------------------

    def _playlist_items(self, query: dict[str, str], headers: Headers) -> _Response:
        # Google takes the key as ?key= or in the X-Goog-Api-Key header.
        key = query.get("key") or headers.get("x-goog-api-key")
        if not key:
            return _google_error(403, "The request is missing a valid API key.", "forbidden")
        if key != self.data_api_key:
            return _google_error(400, _INVALID_KEY, "badRequest")
        parts = set(filter(None, query.get("part", "").split(",")))
        if not parts:
            return _google_error(400, "Required parameter: part", "required")
        page_size = query.get("maxResults", "5")
        if not page_size.isdigit() or int(page_size) > 50:
            return _google_error(400, "maxResults must be within [0, 50]", "invalidParameter")
        try:
            start = _decode_page_token(query.get("pageToken", ""))
        except ValueError:
            return _google_error(
                400, "The request specifies an invalid page token.", "invalidPageToken"
            )
        playlist_id = query.get("playlistId", "")
        with self._lock:
            channel = (
                self._channels.get("UC" + playlist_id[2:]) if playlist_id[:2] == "UU" else None
            )
            videos = list(channel.videos) if channel else []
        if channel is None:
            message = (
                "The playlist identified with the request's playlistId parameter cannot be found."
            )
            return _google_error(404, message, "playlistNotFound")
        max_results = int(page_size)
        end = start + max_results
        items = [
            _playlist_item(video, channel, playlist_id, position, parts)
            for position, video in enumerate(videos[start:end], start)
        ]
        body: dict[str, Any] = {"kind": "youtube#playlistItemListResponse", "etag": _etag(items)}
        if end < len(videos):
            body["nextPageToken"] = _encode_page_token(end)
        if start > 0:
            body["prevPageToken"] = _encode_page_token(max(start - max_results, 0))
        body["items"] = items
        body["pageInfo"] = {"totalResults": len(videos), "resultsPerPage": max_results}
        return _Response(200, json.dumps(body, indent=2).encode(), _JSON)


# --- response bodies ------------------------------------------------------------------------


def _author_xml(channel: Channel, indent: str) -> str:
    return (
        f"{indent}<author>\n{indent} <name>{escape(channel.name)}</name>\n"
        f"{indent} <uri>https://www.youtube.com/channel/{escape(channel.channel_id)}</uri>\n"
        f"{indent}</author>\n"
    )


def _feed_xml(channel: Channel) -> str:
    """The channel's Atom feed in the layout YouTube serves (latest FEED_LIMIT videos)."""
    cid, bare_id = escape(channel.channel_id), escape(channel.channel_id[2:])
    entries = "".join(_feed_entry(video, channel) for video in channel.videos[:FEED_LIMIT])
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015"'
        ' xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">\n'
        f' <link rel="self" href="http://www.youtube.com/feeds/videos.xml?channel_id={cid}"/>\n'
        f" <id>yt:channel:{bare_id}</id>\n"
        f" <yt:channelId>{bare_id}</yt:channelId>\n"
        f" <title>{escape(channel.name)}</title>\n"
        f' <link rel="alternate" href="https://www.youtube.com/channel/{cid}"/>\n'
        + _author_xml(channel, " ")
        + f" <published>{channel.created.isoformat()}</published>\n"
        + entries
        + "</feed>\n"
    )


def _feed_entry(video: Video, channel: Channel) -> str:
    vid, title = escape(video.video_id), escape(video.title)
    return (
        " <entry>\n"
        f"  <id>yt:video:{vid}</id>\n"
        f"  <yt:videoId>{vid}</yt:videoId>\n"
        f"  <yt:channelId>{escape(channel.channel_id)}</yt:channelId>\n"
        f"  <title>{title}</title>\n"
        f'  <link rel="alternate" href="https://www.youtube.com/watch?v={vid}"/>\n'
        + _author_xml(channel, "  ")
        + f"  <published>{video.published.isoformat()}</published>\n"
        f"  <updated>{video.published.isoformat()}</updated>\n"
        "  <media:group>\n"
        f"   <media:title>{title}</media:title>\n"
        f'   <media:content url="https://www.youtube.com/v/{vid}?version=3"'
        ' type="application/x-shockwave-flash" width="640" height="390"/>\n'
        f'   <media:thumbnail url="https://i4.ytimg.com/vi/{vid}/hqdefault.jpg"'
        ' width="480" height="360"/>\n'
        f"   <media:description>{escape(video.description)}</media:description>\n"
        '   <media:community><media:starRating count="0" average="0.00" min="1" max="5"/>'
        '<media:statistics views="0"/></media:community>\n'
        "  </media:group>\n"
        " </entry>\n"
    )


def _not_modified(headers: Headers, etag: str, modified: int) -> bool:
    """Whether a conditional GET is satisfied (If-None-Match wins over If-Modified-Since)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    since = headers.get("if-modified-since")
    if since:
        with contextlib.suppress(TypeError, ValueError):
            return _utc(parsedate_to_datetime(since)).timestamp() >= modified
    return False


def _channel_html(channel: Channel) -> str:
    """A channel page carrying the id where real pages do (canonical, meta, ytInitialData)."""
    cid = channel.channel_id
    url = f"https://www.youtube.com/channel/{cid}"
    initial_data = {
        "metadata": {
            "channelMetadataRenderer": {
                "title": channel.name,
                "rssUrl": f"https://www.youtube.com/feeds/videos.xml?channel_id={cid}",
                "externalId": cid,
                "channelUrl": url,
                "vanityChannelUrl": f"http://www.youtube.com/@{channel.handle}"
                if channel.handle
                else url,
            }
        }
    }
    script = json.dumps(initial_data, separators=(",", ":")).replace("</", "<\\/")
    return (
        '<!DOCTYPE html><html lang="en"><head>'
        f"<title>{html.escape(channel.name)} - YouTube</title>"
        f'<link rel="canonical" href="{html.escape(url)}">'
        f'<meta property="og:title" content="{html.escape(channel.name)}">'
        f'<meta property="og:url" content="{html.escape(url)}">'
        f'<meta itemprop="identifier" content="{html.escape(cid)}">'
        '<link rel="alternate" type="application/rss+xml" title="RSS" '
        f'href="{html.escape(initial_data["metadata"]["channelMetadataRenderer"]["rssUrl"])}">'
        f'</head><body><script nonce="fake">var ytInitialData = {script};</script></body></html>'
    )


def _player_with_tracks(video_id: str, tracks: list[CaptionTrack], video: Video | None) -> dict:
    """The recorded playable innertube response, captions replaced by the given tracks."""
    recorded = _player("youtube")
    captions = dict(recorded["captions"]["playerCaptionsTracklistRenderer"])
    captions["captionTracks"] = [_caption_track(video_id, track) for track in tracks]
    captions["audioTracks"] = [
        {**captions["audioTracks"][0], "captionTrackIndices": list(range(len(tracks)))}
    ]
    captions["defaultTranslationSourceTrackIndices"] = [0]
    details = {**recorded["videoDetails"], "videoId": video_id}
    if video is not None:
        details |= {"title": video.title, "shortDescription": video.description}
    return {
        **recorded,
        "captions": {"playerCaptionsTracklistRenderer": captions},
        "videoDetails": details,
    }


def _caption_track(video_id: str, track: CaptionTrack) -> dict[str, Any]:
    """A captionTracks[] entry whose baseUrl is the recorded one, re-pointed at this track."""
    code, asr = track.language_code, not track.manual
    query = {**_timedtext_query(), "v": video_id, "lang": code} | ({"kind": "asr"} if asr else {})
    name = _language_names().get(code, code) + (" (auto-generated)" if asr else "")
    entry: dict[str, Any] = {
        "baseUrl": "https://www.youtube.com/api/timedtext?" + urlencode(query),
        "name": {"runs": [{"text": name}]},
        "vssId": ("a." if asr else ".") + code,
        "languageCode": code,
    }
    if asr:
        entry["kind"] = "asr"
    return entry | {"isTranslatable": track.translatable, "trackName": ""}


def _timedtext_xml(text: str) -> bytes:
    """Timedtext XML of the text in snippets of a few words, HTML-escaped like YouTube does."""
    words = text.split()
    elements, start = [], 0.0
    for i in range(0, len(words), _WORDS_PER_SNIPPET):
        chunk = words[i : i + _WORDS_PER_SNIPPET]
        duration = round(len(chunk) * _SECONDS_PER_WORD, 3)
        body = escape(html.escape(" ".join(chunk)))
        elements.append(f'<text start="{start:g}" dur="{duration:g}">{body}</text>')
        start = round(start + duration, 3)
    return (
        '<?xml version="1.0" encoding="utf-8" ?><transcript>' + "".join(elements) + "</transcript>"
    ).encode()


def _playlist_item(
    video: Video, channel: Channel, playlist_id: str, position: int, parts: set[str]
) -> dict:
    published = video.published.strftime("%Y-%m-%dT%H:%M:%SZ")
    item: dict[str, Any] = {
        "kind": "youtube#playlistItem",
        "etag": _etag([video.video_id, position]),
        "id": base64.b64encode(f"{playlist_id}.{video.video_id}".encode()).decode(),
    }
    if "snippet" in parts:
        item["snippet"] = {
            "publishedAt": published,
            "channelId": channel.channel_id,
            "title": video.title,
            "description": video.description,
            "thumbnails": {
                "default": {
                    "url": f"https://i.ytimg.com/vi/{video.video_id}/default.jpg",
                    "width": 120,
                    "height": 90,
                },
                "high": {
                    "url": f"https://i.ytimg.com/vi/{video.video_id}/hqdefault.jpg",
                    "width": 480,
                    "height": 360,
                },
            },
            "channelTitle": channel.name,
            "playlistId": playlist_id,
            "position": position,
            "resourceId": {"kind": "youtube#video", "videoId": video.video_id},
            "videoOwnerChannelTitle": channel.name,
            "videoOwnerChannelId": channel.channel_id,
        }
    if "contentDetails" in parts:
        item["contentDetails"] = {"videoId": video.video_id, "videoPublishedAt": published}
    return item


def _etag(value: object) -> str:
    return base64.urlsafe_b64encode(hashlib.sha1(json.dumps(value).encode()).digest()).decode()[:27]


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"PT:{offset}".encode()).decode().rstrip("=")


def _decode_page_token(token: str) -> int:
    """Offset of an opaque page token ("" is the first page); ValueError when malformed."""
    decoded = (
        base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode() if token else "PT:0"
    )
    prefix, _, offset = decoded.partition(":")
    if prefix != "PT" or not offset.isdigit():
        raise ValueError(f"invalid page token {token!r}")
    return int(offset)


# --- HTTP handlers and the CONNECT proxy -----------------------------------------------------


class _YouTubeHandler(BaseHTTPRequestHandler):
    """Parses a request, lets FakeYouTube answer it, records it and writes the response."""

    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    sys_version = ""
    timeout = 30
    server: FakeYouTube

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = RecordedRequest(
            method=self.command,
            host=self.headers.get("Host", ""),
            path=url.path,
            query={k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()},
            headers=Headers(self.headers.items()),
            body=self.rfile.read(length) if length else b"",
        )
        response = self.server.respond(request)
        data = self._serialize(response)
        request.status, request.response_bytes = response.status, len(data)
        self.server.record(request)
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def _serialize(self, response: _Response) -> bytes:
        """The full response (status line, headers, body) as bytes."""
        socket_writer, self.wfile = self.wfile, io.BytesIO()
        try:
            self.send_response(response.status)
            if response.status != 304:
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
            return self.wfile.getvalue()
        finally:
            self.wfile = socket_writer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


class _ConnectProxy(_QuietServer):
    """HTTP proxy that tunnels every `CONNECT host:443` to the fake YouTube port."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = upstream_port
        self.connects: list[str] = []
        self.lock = threading.Lock()
        self._tunnels: set[socket.socket] = set()

    @contextlib.contextmanager
    def tunnel(self, *sockets: socket.socket) -> Iterator[None]:
        """Track a tunnel's sockets so that `close_tunnels` can tear it down."""
        with self.lock:
            self._tunnels.update(sockets)
        try:
            yield
        finally:
            with self.lock:
                self._tunnels.difference_update(sockets)

    def close_tunnels(self) -> None:
        with self.lock:
            sockets = list(self._tunnels)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ConnectProxy

    def do_CONNECT(self) -> None:
        self.close_connection = True
        with self.server.lock:
            self.server.connects.append(self.path)
        host, _, port = self.path.rpartition(":")
        if not host or port != "443":
            return self._refuse(403)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.upstream_port), timeout=5)
        except OSError:
            return self._refuse(502)
        upstream.settimeout(None)
        self.send_response(200, "Connection established")
        self.end_headers()
        with upstream, self.server.tunnel(self.connection, upstream):
            forward = threading.Thread(target=_pipe, args=(self.rfile.read1, upstream), daemon=True)
            forward.start()
            _pipe(upstream.recv, self.connection)
            forward.join()
        return None

    def _refuse(self, status: int = 502) -> None:
        """Answer without tunnelling (plain-HTTP proxying is not offered: 502)."""
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


def _pipe(read: Callable[[int], bytes], destination: socket.socket) -> None:
    """Copy bytes until EOF or error, then half-close the destination's sending side."""
    with contextlib.suppress(OSError, ValueError):
        while chunk := read(65536):
            destination.sendall(chunk)
    with contextlib.suppress(OSError):
        destination.shutdown(socket.SHUT_WR)
