"""Channel references: validate channel ids, recognise handles and URLs, resolve them."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from creatorkb.errors import ChannelNotResolved, RosterError

CHANNEL_ID = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
HANDLE = re.compile(r"^@[A-Za-z0-9._·-]{3,30}$")
_CANONICAL = re.compile(
    r'<link\s+rel="canonical"\s+href="https://www\.youtube\.com/channel/(UC[A-Za-z0-9_-]{22})"'
)
_EXTERNAL_ID = re.compile(r'"externalId"\s*:\s*"(UC[A-Za-z0-9_-]{22})"')
_TITLE = re.compile(r'<meta\s+property="og:title"\s+content="([^"]+)"')
_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com"}


@dataclass(frozen=True)
class ChannelRef:
    """What a user typed for a channel: an id, or a page (handle, /c/, /user/) to resolve."""

    channel_id: str | None = None
    page_path: str | None = None

    @property
    def handle(self) -> str | None:
        """The @handle, when the reference is one."""
        return self.page_path[1:] if self.page_path and self.page_path.startswith("/@") else None


def validate_channel_id(value: str) -> str:
    """Return the channel id, or raise naming what is wrong with it."""
    if CHANNEL_ID.match(value):
        return value
    raise RosterError(
        f"{value!r} is not a YouTube channel id: expected 'UC' followed by 22 letters, digits, "
        "'-' or '_' (24 characters). Give a @handle or the channel URL to have it resolved."
    )


def parse_channel_ref(text: str) -> ChannelRef:
    """Recognise a channel id, a @handle, or a youtube.com channel URL."""
    value = text.strip()
    if value.startswith("@"):
        if not HANDLE.match(value):
            raise RosterError(
                f"{value!r} is not a YouTube handle: expected '@' and 3 to 30 letters, digits, "
                "'.', '-' or '_'"
            )
        return ChannelRef(page_path=f"/{value}")
    if value.startswith("UC") and "/" not in value:
        return ChannelRef(channel_id=validate_channel_id(value))
    url = urlsplit(value if "://" in value else f"https://{value}")
    if url.hostname not in _YOUTUBE_HOSTS:
        raise RosterError(f"{value!r} is not a channel id, @handle or youtube.com channel URL")
    parts = [part for part in url.path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "channel":
        return ChannelRef(channel_id=validate_channel_id(parts[1]))
    if parts and parts[0].startswith("@"):
        return parse_channel_ref(parts[0])
    if len(parts) >= 2 and parts[0] in ("c", "user"):
        return ChannelRef(page_path=f"/{parts[0]}/{parts[1]}")
    raise RosterError(f"{value!r} is a YouTube URL but not a channel's (no /channel/, /@, /c/)")


@dataclass(frozen=True)
class ResolvedChannel:
    """A channel id, and the channel's title when its page was read."""

    channel_id: str
    title: str | None = None


def resolve_channel(
    ref: ChannelRef, client: httpx.Client, *, title: bool = False
) -> ResolvedChannel:
    """The channel behind a reference, read from the channel page when needed (always when
    its `title` is wanted)."""
    if ref.channel_id and not title:
        return ResolvedChannel(ref.channel_id)
    url = f"https://www.youtube.com{ref.page_path or f'/channel/{ref.channel_id}'}"
    try:
        response = client.get(url, headers={"Accept-Language": "en-US"}, follow_redirects=True)
    except httpx.HTTPError as error:
        raise ChannelNotResolved(
            f"could not reach {url} to resolve the channel: {error}"
        ) from error
    if response.status_code == 404:
        raise ChannelNotResolved(f"YouTube has no channel at {url} (404); check the spelling")
    if response.status_code != 200:
        raise ChannelNotResolved(
            f"YouTube answered {response.status_code} for {url}; try again later or give the "
            "channel id (UC...) instead"
        )
    found = _CANONICAL.search(response.text) or _EXTERNAL_ID.search(response.text)
    if found is None:
        raise ChannelNotResolved(
            f"the page {url} names no channel id (no canonical link or externalId); give the "
            "channel id (UC...) instead"
        )
    title = _TITLE.search(response.text)
    return ResolvedChannel(found[1], html.unescape(title[1]) if title else None)
