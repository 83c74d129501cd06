"""HTTP clients for YouTube that honour the proxy and CA settings users rely on.

A configured proxy URL wins; otherwise HTTPS_PROXY / NO_PROXY apply (httpx and
requests read them). The CA bundle comes from REQUESTS_CA_BUNDLE or SSL_CERT_FILE,
whichever is set, so one private CA works for both client libraries.
"""

from __future__ import annotations

import os
import ssl

import httpx
import requests

USER_AGENT = "Mozilla/5.0 (compatible; creatorkb/0.1; +https://github.com/creatorkb)"


def ca_bundle() -> str | None:
    """The CA bundle named by the environment, if any."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None


def _verify() -> ssl.SSLContext | bool:
    bundle = ca_bundle()
    return ssl.create_default_context(cafile=bundle) if bundle else True


def http_client(
    proxy_url: str | None = None, timeout: float = 20.0, max_connections: int = 16
) -> httpx.Client:
    """An httpx client for YouTube (thread-safe: one serves every feed read)."""
    return httpx.Client(
        proxy=proxy_url,
        verify=_verify(),
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=max_connections),
    )


def requests_session(proxy_url: str | None = None) -> requests.Session:
    """A requests session for youtube-transcript-api (one per thread: it is not thread-safe)."""
    session = requests.Session()
    session.verify = ca_bundle() or True
    if proxy_url:
        # requests lets HTTPS_PROXY override session.proxies unless the environment is ignored.
        session.trust_env = False
        session.proxies = {"http": proxy_url, "https": proxy_url}
    return session
