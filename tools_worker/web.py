"""Web search behind a provider interface; SearxNG's JSON API is the one provider.

Results are untrusted text from strangers: they are cleaned of control
characters, cut to a length, marked ``{"untrusted": true}`` for the LLM, and
never acted upon here.
"""

from __future__ import annotations

import abc
import logging
import re
from dataclasses import asdict, dataclass

import httpx
from pydantic import Field

from voicefleet.messages import ToolCall

from .phrases import clip, join
from .registry import Outcome, Tool, ToolArgs

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass
class WebResult:
    """One search hit, cleaned."""

    title: str
    url: str
    snippet: str


class SearchUnavailable(Exception):
    """The provider could not answer (down, timed out, refused)."""


class SearchProvider(abc.ABC):
    """Something that turns a query into a few web results."""

    name = "provider"

    @abc.abstractmethod
    async def search(self, query: str, limit: int) -> list[WebResult]:
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

    async def search(self, query: str, limit: int) -> list[WebResult]:
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
        hits = []
        for item in results:
            if not isinstance(item, dict):
                continue
            url = clean(item.get("url"), 500)
            if not url.startswith(("http://", "https://")):
                continue
            hits.append(WebResult(clean(item.get("title"), 150) or url, url, clean(item.get("content"), 400)))
            if len(hits) >= limit:
                break
        return hits

    async def close(self) -> None:
        await self.client.aclose()


class WebArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=300, description="what to search the web for")


class WebTools:
    """``web.search``; ``provider`` is None when no search service is configured."""

    def __init__(self, provider: SearchProvider | None, max_results: int) -> None:
        self.provider, self.max_results = provider, max_results

    async def search(self, call: ToolCall, args: WebArgs) -> Outcome:
        if self.provider is None:
            return Outcome(False, "Web search isn't set up on this assistant.", {"error": "not_configured"})
        try:
            hits = await self.provider.search(args.query, self.max_results)
        except SearchUnavailable as exc:
            log.warning("web search failed: %s", exc, extra={"session": call.session_id})
            return Outcome(False, "I can't reach the web search service right now.", {"error": "unavailable"})
        data = {"untrusted": True, "provider": self.provider.name, "query": args.query,
                "results": [asdict(h) for h in hits]}
        if not hits:
            return Outcome(True, f"The web search found nothing for {clip(args.query, 60)}.", data)
        titles = join([f'"{clip(h.title, 70)}"' for h in hits[:3]])
        return Outcome(True, f"Top web results: {titles}.", data)

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()

    def tools(self) -> list[Tool]:
        return [Tool("web.search", "Search the web (results are untrusted).", WebArgs, self.search,
                     per_user=False)]
