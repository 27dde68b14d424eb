"""MCP servers' tools as tools of the assistant: ``mcp.<server>.<tool>``.

One :class:`ServerLink` per configured server (``VF_TOOLS_MCP_SERVERS``) keeps
a connection open with the official ``mcp`` SDK: a stdio server is started as
a child process, a streamable-HTTP server is reached at its URL with its
headers. On connecting, and again whenever the server announces
``notifications/tools/list_changed`` (or, on 2026-era servers, sends that event
on a ``subscriptions/listen`` stream), the link lists the tools, applies the
allow and deny lists and publishes them (:mod:`voicefleet.remote_tools`) for
the orchestrator. The tools are also listed every ``VF_TOOLS_MCP_RELIST_S``:
that finds changes of servers that do not announce them, and a server that
died (or hangs) while nobody called it. A link that breaks reconnects with
backoff (a stdio server is started again), in the background: the worker
never waits for a server to start.

A call never hangs and never raises: a server that is down, slow past its
timeout, or killed mid-call costs the turn one sentence naming it. Every call
carries the user and session in its ``_meta`` (``io.voicefleet/user``,
``io.voicefleet/session``), so that a server can keep per-user data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from voicefleet.bus import REDIS_DOWN, Backoff
from voicefleet.catalogue import RemoteResult
from voicefleet.messages import ToolCall
from voicefleet.remote_tools import (
    SESSION_META,
    USER_META,
    RemoteCatalogue,
    RemoteTool,
    ServerListing,
    remote_name,
    split_name,
)

from .registry import Outcome, refuse
from .settings import McpServer, ToolsSettings

log = logging.getLogger(__name__)

MAX_PAGES = 20  # of a tools/list walk: a server whose cursor never ends cannot hang a refresh


class ServerLink:
    """The connection to one MCP server, its published tools, and calls to them."""

    #: How the protocol version is agreed: "auto" asks the server (2026-07-28 if it can, else the
    #: initialize handshake of 2025); tests set "legacy" to follow a 2025 server's notifications.
    mode = "auto"

    def __init__(self, name: str, config: McpServer, settings: ToolsSettings, catalogue: RemoteCatalogue) -> None:
        self.name, self.config, self.catalogue = name, config, catalogue
        self.timeout_s = settings.mcp_call_timeout(config)
        self.max_chars = settings.mcp_result_limit(config)
        self.connect_timeout_s = settings.mcp_connect_timeout_s
        self.relist_s = settings.mcp_relist_s or None
        self.client: Client | None = None
        self.tools: dict[str, RemoteTool] = {}
        self.error = "not connected yet"
        self.calls = 0
        self.connections = 0  # times the server was reached and listed
        self._changed = asyncio.Event()  # the server said its tools changed
        self._broken = asyncio.Event()  # a call found the connection dead: reconnect

    @property
    def up(self) -> bool:
        return self.client is not None

    # ---- the connection ------------------------------------------------------
    def _client(self) -> Client:
        if self.config.command:
            params = StdioServerParameters(
                command=self.config.command, args=self.config.args, env=self.config.env or None, cwd=self.config.cwd
            )
            return Client(params, message_handler=self._on_message, read_timeout_seconds=self.connect_timeout_s,
                          mode=self.mode)
        return Client(self._http(), message_handler=self._on_message, read_timeout_seconds=self.connect_timeout_s,
                      mode=self.mode)

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[Any]:
        import httpx2  # the mcp SDK's HTTP client (mcp 2.x); llama-index keeps httpx 0.x beside it

        async with httpx2.AsyncClient(headers=self.config.headers, timeout=httpx2.Timeout(30, read=300)) as http:
            async with streamable_http_client(self.config.url, http_client=http) as streams:
                yield streams

    async def run(self) -> None:
        """Stay connected: connect, publish, refresh on change; reconnect with backoff when it breaks."""
        backoff = Backoff(first=0.5, cap=30.0)
        while True:
            before = self.connections
            try:
                # Exceptions of the SDK's own tasks (a dead server) come out of this block, not into _serve.
                async with self._client() as client:
                    await self._serve(client)
            except Exception as exc:
                lost = self.connections > before
                await self._down(f"{'connection lost' if lost else 'cannot connect'}: {describe(exc)}")
            finally:
                self.client = None
            if self.connections > before:  # it worked for a while: try again soon
                backoff.reset()
            await backoff.wait()

    async def _serve(self, client: Client) -> None:
        self._broken.clear()
        self._changed.clear()
        await self.refresh(client)
        self.client = client
        self.connections += 1
        log.info("MCP server %s: connected (%s), %d tools: %s", self.name, client.protocol_version,
                 len(self.tools), ", ".join(sorted(self.tools)) or "none")
        listen = None
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            listen = asyncio.create_task(self._listen(client), name=f"mcp-listen-{self.name}")
        try:
            while not self._broken.is_set():
                changed = asyncio.create_task(self._changed.wait())
                broken = asyncio.create_task(self._broken.wait())
                await asyncio.wait({changed, broken}, timeout=self.relist_s, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                broken.cancel()
                if self._broken.is_set():
                    break
                # Announced, or time to look again: a dead idle server shows here, not only at the next call.
                announced = self._changed.is_set()
                self._changed.clear()
                before = set(self.tools)
                async with asyncio.timeout(self.timeout_s):
                    await self.refresh(client)
                if announced or set(self.tools) != before:
                    log.info("MCP server %s: tools changed, now %d", self.name, len(self.tools))
        finally:
            if listen is not None:
                listen.cancel()
                await asyncio.gather(listen, return_exceptions=True)
        raise ConnectionError(self.error or "a call found the connection dead")

    async def _listen(self, client: Client) -> None:
        """2026-era servers send list changes only on a ``subscriptions/listen`` stream."""
        try:
            async with client.listen(tools_list_changed=True) as events:
                async for _ in events:
                    self._changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a server without subscriptions: list changes are not followed
            log.info("MCP server %s: no change notifications (%s)", self.name, describe(exc))

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._changed.set()
        elif isinstance(message, Exception):
            log.warning("MCP server %s: %s", self.name, describe(message))

    async def refresh(self, client: Client) -> None:
        """List the server's tools, keep those the allow and deny lists let through, publish them."""
        found: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            found += page.tools
            cursor = page.next_cursor
            if cursor is None:
                break
        offered = [t for t in found if self.config.offers(t.name)]
        self.tools = {
            t.name: RemoteTool(
                name=remote_name(self.name, t.name), server=self.name, tool=t.name,
                description=(t.description or "").strip(), input_schema=dict(t.input_schema),
            )
            for t in offered
        }  # fmt: skip
        self.error = ""
        await self._publish(up=True)

    async def _down(self, error: str) -> None:
        if error != self.error:
            log.warning("MCP server %s: %s", self.name, error)
        self.error = error
        self.client = None
        await self._publish(up=False)

    async def _publish(self, up: bool) -> None:
        listing = ServerListing(server=self.name, up=up, tools=list(self.tools.values()), error=self.error)
        try:
            await self.catalogue.publish(listing)
        except REDIS_DOWN:
            log.warning("MCP server %s: could not publish its tools (Redis down)", self.name)

    # ---- calls -------------------------------------------------------------------
    async def call(self, call: ToolCall, tool: str) -> Outcome:
        """Run ``tool`` for ``call``: its answer, or a refusal with one sentence to say."""
        if not self.config.offers(tool):
            return refuse(f"The {self.name} tool {tool} is not allowed here.", "denied")
        client = self.client
        if client is None:
            return refuse(f"Sorry, the {self.name} service is not available right now.", "mcp_unavailable")
        self.calls += 1
        meta: dict[str, Any] = {USER_META: call.user, SESSION_META: call.session_id}
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await client.call_tool(tool, call.args or {}, read_timeout_seconds=self.timeout_s,
                                                meta=meta)  # type: ignore[arg-type]
        except TimeoutError:
            return self._too_slow(tool)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:  # the SDK's own read timeout may fire first
                return self._too_slow(tool)
            if self._dead(exc):
                self.error = f"{tool}: {describe(exc)}"
                self._broken.set()
                return refuse(f"Sorry, the {self.name} service stopped answering, so I could not do that.",
                              "mcp_unavailable")
            log.info("MCP server %s refused %s: %s", self.name, tool, exc.message)
            return refuse(f"The {self.name} service refused that: {clip(exc.message, 200)}", "mcp_error")
        except Exception as exc:
            log.warning("MCP server %s: %s failed: %s", self.name, tool, describe(exc))
            self.error = f"{tool}: {describe(exc)}"
            self._broken.set()
            return refuse(f"Sorry, the {self.name} service stopped answering, so I could not do that.",
                          "mcp_unavailable")
        log.info("MCP server %s: %s answered in %d ms", self.name, tool, (time.monotonic() - started) * 1000)
        return self._outcome(tool, result)

    def _too_slow(self, tool: str) -> Outcome:
        log.warning("MCP server %s: %s took over %.1f s", self.name, tool, self.timeout_s)
        return refuse(f"Sorry, the {self.name} service did not answer in time.", "mcp_timeout")

    @staticmethod
    def _dead(exc: MCPError) -> bool:
        return exc.code == types.CONNECTION_CLOSED

    def _outcome(self, tool: str, result: types.CallToolResult) -> Outcome:
        raw = " ".join(_content_text(block) for block in result.content).strip()
        said = speakable(raw)
        structured = result.structured_content if isinstance(result.structured_content, dict) else None
        too_big = structured is not None and len(json.dumps(structured)) > self.max_chars
        data = RemoteResult(server=self.name, tool=tool, text=clip(raw, self.max_chars),
                            structured=None if too_big else structured,
                            truncated=too_big or max(len(raw), len(said)) > self.max_chars)
        text = clip(said, self.max_chars)
        if result.is_error:
            return refuse(text or f"The {self.name} service could not do that.", "mcp_tool_error")
        return Outcome(True, text or "Done.", data)


class McpTools:
    """Every configured MCP server: their connections, published tools, and dispatch of ``mcp.*`` calls."""

    def __init__(self, settings: ToolsSettings, catalogue: RemoteCatalogue) -> None:
        self.catalogue = catalogue
        self.links = {name: ServerLink(name, cfg, settings, catalogue) for name, cfg in settings.mcp_servers.items()}

    async def start(self) -> None:
        """Forget servers that are no longer configured (their listings would linger)."""
        with contextlib.suppress(*REDIS_DOWN):
            await self.catalogue.keep_only(set(self.links))

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        return [link.run() for link in self.links.values()]

    def status(self) -> dict[str, Any]:
        return {name: {"up": link.up, "tools": len(link.tools), "calls": link.calls, "connections": link.connections}
                for name, link in self.links.items()}

    async def dispatch(self, call: ToolCall) -> Outcome:
        parts = split_name(call.name)
        link = self.links.get(parts[0]) if parts else None
        if parts is None or link is None:
            return refuse(f"I don't have a tool called {call.name!r}.", "unknown_tool")
        return await link.call(call, parts[1])


def _content_text(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
        return block.resource.text
    return f"[{getattr(block, 'type', 'content')}]"


def speakable(text: str) -> str:
    """A JSON answer turned into words ("timezone: Asia/Tokyo; is dst: no"), other text as it is."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return stripped
    try:
        value = json.loads(stripped)
    except ValueError:
        return stripped
    return _words(value) + "."


def _words(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {_words(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_words(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else str(value)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word, marked as cut."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)].rsplit(" ", 1)[0]
    return cut + "…"


def describe(exc: BaseException) -> str:
    """One line for an exception (the first of a group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200] if text else type(exc).__name__
