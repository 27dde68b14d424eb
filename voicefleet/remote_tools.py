"""Tools found at run time: the tools of MCP servers, named ``mcp.<server>.<tool>``.

The static catalogue (:mod:`voicefleet.catalogue`) lists the assistant's own
tools. An MCP server's tools are known only once the tools worker has
connected to it, and may change while it runs, so they are published on the
bus instead: the tools worker writes one :class:`ServerListing` per server into
the hash ``keys.remote_tools`` (again whenever the server announces
``notifications/tools/list_changed``), and the orchestrator reads it to offer
the tools to a model. Each tool keeps the server's own JSON Schema. Calls go
through the tools worker like any other tool; their result data is a
:class:`~voicefleet.catalogue.RemoteResult`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from .bus import Bus

log = logging.getLogger(__name__)

PREFIX = "mcp."
#: A server's name in settings: it becomes part of every tool name.
SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
#: ``_meta`` keys of every ``tools/call`` request the assistant sends: who asked, from which session.
USER_META = "io.voicefleet/user"
SESSION_META = "io.voicefleet/session"


class RemoteTool(BaseModel):
    """One tool of an MCP server, as the catalogue shows it."""

    name: str = Field(description="mcp.<server>.<tool>")
    server: str
    tool: str = Field(description="the server's own name for it")
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ServerListing(BaseModel):
    """What one MCP server offers now (after the allow and deny lists)."""

    server: str
    up: bool = False
    tools: list[RemoteTool] = Field(default_factory=list)
    error: str = Field("", description="why it is down, for operators")
    updated: float = Field(default_factory=time.time)


def remote_name(server: str, tool: str) -> str:
    return f"{PREFIX}{server}.{tool}"


def split_name(name: str) -> tuple[str, str] | None:
    """``("time", "get_current_time")`` from ``mcp.time.get_current_time``; None for other tools."""
    if not name.startswith(PREFIX):
        return None
    server, dot, tool = name[len(PREFIX) :].partition(".")
    return (server, tool) if dot and server and tool else None


class RemoteCatalogue:
    """The published listings (one writer per server: the tools worker connected to it)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def publish(self, listing: ServerListing) -> None:
        await self.bus.redis.hset(self.bus.keys.remote_tools, listing.server, listing.model_dump_json())  # type: ignore[misc]  # redis-py 7 types async replies as X | Awaitable[X]

    async def keep_only(self, servers: set[str]) -> None:
        """Drop the listings of servers that are no longer configured."""
        known = await self.bus.redis.hkeys(self.bus.keys.remote_tools)  # type: ignore[misc]  # redis-py 7 types async replies as X | Awaitable[X]
        gone = [k for k in known if _text(k) not in servers]
        if gone:
            await self.bus.redis.hdel(self.bus.keys.remote_tools, *gone)  # type: ignore[misc]  # redis-py 7 types async replies as X | Awaitable[X]

    async def listings(self) -> dict[str, ServerListing]:
        raw = await self.bus.redis.hgetall(self.bus.keys.remote_tools)  # type: ignore[misc]  # redis-py 7 types async replies as X | Awaitable[X]
        out: dict[str, ServerListing] = {}
        for key, value in raw.items():
            try:
                out[_text(key)] = ServerListing.model_validate(json.loads(value))
            except (ValueError, ValidationError):
                log.warning("ignoring a listing of MCP server %r that does not fit", key)
        return out

    async def tools(self) -> dict[str, RemoteTool]:
        """Every published tool by its full name (servers down included: a call says so in a sentence)."""
        return {t.name: t for listing in (await self.listings()).values() for t in listing.tools}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
