"""Web search behind a provider interface: ``ddgs`` (no key) or a self-hosted SearxNG.

With no internet the search answers one sentence at once instead of waiting
for every engine to time out: a short TLS probe of a well-known host comes first
(TLS, not just TCP: an intercepting network accepts every connection but cannot
show the host's certificate).

Results are untrusted text from strangers: they are cleaned of control
characters, cut to a length, marked ``{"untrusted": true}`` for the LLM, and
never acted upon here.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import re
import ssl
import time
from typing import Any

import httpx

from voicefleet.catalogue import WebHit, WebQueryArgs, WebResults
from voicefleet.messages import ToolCall

from .phrases import clip, join
from .registry import Outcome, Tool, bind, refuse

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class SearchUnavailable(Exception):
    """The provider could not answer (down, timed out, refused)."""


class NoInternet(SearchUnavailable):
    """The machine cannot reach the internet at all."""


OFFLINE = "I can't reach the internet right now, so I can't search the web."
UNAVAILABLE = "I can't reach the web search service right now."
NOT_SET_UP = "Web search is turned off on this assistant."


class SearchProvider(abc.ABC):
    """Something that turns a query into a few web results."""

    name = "provider"

    @abc.abstractmethod
    async def search(self, query: str, limit: int) -> list[WebHit]:
        """Up to ``limit`` results; raises :class:`SearchUnavailable` when it cannot answer."""

    async def close(self) -> None:  # noqa: B027 - an optional hook: not every provider holds connections
        """Release connections."""


def clean(text: object, limit: int) -> str:
    flat = " ".join(_CONTROL.sub(" ", str(text or "")).split())
    return flat[:limit]


class SearxngProvider(SearchProvider):
    """``GET {url}/search?q=...&format=json`` (JSON must be enabled in SearxNG's settings.yml)."""

    name = "searxng"

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s), headers={"Accept": "application/json"}, follow_redirects=True
        )

    async def search(self, query: str, limit: int) -> list[WebHit]:
        try:
            response = await self.client.get(f"{self.base_url}/search", params={"q": query, "format": "json"})
            response.raise_for_status()
            payload = response.json()
        except httpx.TimeoutException as exc:
            raise SearchUnavailable("timed out") from exc
        except httpx.HTTPStatusError as exc:
            # 403 usually means format=json is not enabled on that SearxNG.
            raise SearchUnavailable(f"HTTP {exc.response.status_code}") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise SearchUnavailable(type(exc).__name__) from exc
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise SearchUnavailable("the answer had no results list")
        return _hits(results, limit, url_key="url", snippet_key="content")

    async def close(self) -> None:
        await self.client.aclose()


class Reachability:
    """Whether the internet answers: a TLS handshake with ``host``, remembered for a minute when it worked."""

    def __init__(self, host: str = "duckduckgo.com", port: int = 443, timeout_s: float = 1.5) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._online_until = 0.0

    async def online(self) -> bool:
        if time.monotonic() < self._online_until:
            return True
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=ssl.create_default_context(),
                                        server_hostname=self.host),
                self.timeout_s,
            )
        except (OSError, TimeoutError):  # ssl.SSLError is an OSError
            return False
        writer.close()
        self._online_until = time.monotonic() + 60.0
        return True


class DdgsProvider(SearchProvider):
    """The ``ddgs`` metasearch library: no key, no server, needs the internet."""

    name = "ddgs"

    def __init__(self, timeout_s: float, probe: Reachability | None = None) -> None:
        self.timeout_s = timeout_s
        self.probe = probe or Reachability(timeout_s=min(1.5, timeout_s))

    async def search(self, query: str, limit: int) -> list[WebHit]:
        if not await self.probe.online():
            raise NoInternet(f"{self.probe.host} unreachable")
        try:
            # ddgs is synchronous (its own HTTP client); its engines may each take the timeout.
            found = await asyncio.wait_for(asyncio.to_thread(self._text, query, limit), self.timeout_s)
        except TimeoutError as exc:
            raise SearchUnavailable("timed out") from exc
        except Exception as exc:  # ddgs raises its own types, and httpx/primp's underneath
            raise SearchUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return _hits(found or [], limit, url_key="href", snippet_key="body")

    def _text(self, query: str, limit: int) -> list[dict[str, Any]]:
        from ddgs import DDGS  # the optional extra: imported only when chosen

        # One client per search: ddgs keeps per-instance engine state that threads should not share.
        return DDGS(timeout=max(1, round(self.timeout_s))).text(query, max_results=limit)


def _hits(items: list[Any], limit: int, url_key: str, snippet_key: str) -> list[WebHit]:
    hits = []
    for item in items:
        if not isinstance(item, dict):
            continue
        url = clean(item.get(url_key), 500)
        if not url.startswith(("http://", "https://")):
            continue
        title = clean(item.get("title"), 150) or url
        hits.append(WebHit(title=title, url=url, snippet=clean(item.get(snippet_key), 400)))
        if len(hits) >= limit:
            break
    return hits


def ddgs_installed() -> bool:
    try:
        import ddgs  # noqa: F401
    except ImportError:
        return False
    return True


class WebTools:
    """``web.search``; ``provider`` is None when web search is off."""

    def __init__(self, provider: SearchProvider | None, max_results: int) -> None:
        self.provider, self.max_results = provider, max_results

    async def search(self, call: ToolCall, args: WebQueryArgs) -> Outcome:
        if self.provider is None:
            return refuse(NOT_SET_UP, "not_configured")
        try:
            hits = await self.provider.search(args.query, self.max_results)
        except NoInternet as exc:
            log.warning("web search: no internet (%s)", exc, extra={"session": call.session_id})
            return refuse(OFFLINE, "offline")
        except SearchUnavailable as exc:
            log.warning("web search failed: %s", exc, extra={"session": call.session_id})
            return refuse(UNAVAILABLE, "unavailable")
        data = WebResults(provider=self.provider.name, query=args.query, results=hits)
        if not hits:
            return Outcome(True, f"The web search found nothing for {clip(args.query, 60)}.", data)
        titles = join([f'"{clip(h.title, 70)}"' for h in hits[:3]])
        return Outcome(True, f"Top web results: {titles}.", data)

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()

    def tools(self) -> list[Tool]:
        return [bind("web.search", self.search)]


def choose_provider(kind: str, searxng_url: str, timeout_s: float) -> SearchProvider | None:
    """The provider the ``web_provider`` setting names; ``auto``: SearxNG when a URL is set, else ddgs."""
    if kind == "off":
        return None
    if kind == "searxng" or (kind == "auto" and searxng_url):
        return SearxngProvider(searxng_url, timeout_s)
    if kind == "ddgs" and not ddgs_installed():
        raise RuntimeError("VF_TOOLS_WEB_PROVIDER=ddgs needs the ddgs package: pip install 'voicefleet[tools]'")
    if kind == "ddgs" or (kind == "auto" and ddgs_installed()):
        return DdgsProvider(timeout_s)
    return None
