"""Calling the tools worker over the bus, and the user's memory for the prompt.

A call is a ``ToolCall`` run by ``bus.call_tool`` (the work stream
``keys.tools``, the answer through ``bus.wait_reply``, withdrawn when not
answered in time). The client sees both as events. Tools of MCP servers are
read from the published remote catalogue, cached briefly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from voicefleet import tracing
from voicefleet.bus import REDIS_DOWN, Bus
from voicefleet.catalogue import MemoryList, read_result
from voicefleet.messages import ToolCall, ToolResult
from voicefleet.remote_tools import RemoteCatalogue, RemoteTool

log = logging.getLogger(__name__)

NO_ANSWER = "My tools did not answer in time, so I could not do that."


@dataclass
class _Cached:
    items: list[str]
    until: float


class ToolsClient:
    """Runs tools through the tools worker; caches each user's memory briefly."""

    def __init__(
        self, bus: Bus, timeout_s: float, memory_timeout_s: float, memory_cache_s: float, remote_cache_s: float = 2.0
    ) -> None:
        self.bus = bus
        self.timeout_s = timeout_s
        self.memory_timeout_s = memory_timeout_s
        self.memory_cache_s = memory_cache_s
        self.remote_cache_s = remote_cache_s
        self._memory: dict[str, _Cached] = {}
        self._remote: dict[str, RemoteTool] = {}
        self._remote_until = 0.0

    async def call(
        self,
        name: str,
        args: dict[str, Any],
        *,
        session_id: str,
        turn_id: str,
        user: str,
        timeout_s: float | None = None,
        show: bool = True,
    ) -> ToolResult:
        """Run one tool; a result with ``ok=False`` and a sentence to say if it failed."""
        call = ToolCall(session_id=session_id, turn_id=turn_id, user=user, name=name, args=args)
        call.stamp("tool_call")
        with tracing.span("llm.tool_call", call, kind=tracing.SpanKind.CLIENT, tool=name) as span:
            result = await self._call(call, timeout_s, show)
            span.set_attribute("ok", result.ok)
        return result

    async def _call(self, call: ToolCall, timeout_s: float | None, show: bool) -> ToolResult:
        name, session_id, turn_id = call.name, call.session_id, call.turn_id
        if show:
            await self.bus.emit(call)
        started = time.monotonic()
        reply = await self.bus.call_tool(call, timeout_s or self.timeout_s)
        elapsed_ms = round((time.monotonic() - started) * 1000)
        if reply is not None:
            result = reply
            log.info("tool %s answered (ok=%s)", name, result.ok, extra={"session": session_id, "ms": elapsed_ms})
        else:
            log.warning("tool %s: no answer", name, extra={"session": session_id, "ms": elapsed_ms})
            result = ToolResult(call_id=call.call_id, name=name, ok=False, text=NO_ANSWER, data={"error": "timeout"})
        result.session_id, result.turn_id = session_id, turn_id
        result.name = result.name or name
        result.call_id = result.call_id or call.call_id
        if show:
            await self.bus.emit(result)
        return result

    async def remote_tools(self) -> dict[str, RemoteTool]:
        """The tools of MCP servers the tools worker published (read again after ``remote_cache_s``)."""
        if time.monotonic() >= self._remote_until:
            try:
                self._remote = await RemoteCatalogue(self.bus).tools()
            except REDIS_DOWN:
                log.warning("could not read the MCP tools: Redis down")
            self._remote_until = time.monotonic() + self.remote_cache_s
        return self._remote

    # ---- memory ---------------------------------------------------------------
    def forget_cache(self, user: str) -> None:
        """The user's memory changed: fetch it again next time."""
        self._memory.pop(user, None)

    async def memory(self, user: str, session_id: str, turn_id: str) -> list[str]:
        """What the user asked the assistant to remember (empty when no tools worker answers)."""
        if not user:
            return []
        cached = self._memory.get(user)
        if cached is not None and cached.until > time.monotonic():
            return cached.items
        items: list[str] = []
        # No tools worker alive: do not make every turn wait for the timeout.
        if await self.bus.alive_instances("tools"):
            result = await self.call(
                "memory.list", {}, session_id=session_id, turn_id=turn_id, user=user,
                timeout_s=self.memory_timeout_s, show=False,
            )  # fmt: skip
            if result.ok:
                items = memory_items(result.data)
        self._memory[user] = _Cached(items, time.monotonic() + self.memory_cache_s)
        return items


def memory_items(data: Any) -> list[str]:
    """The facts of a ``memory.list`` result, read through its catalogue model ([] when it does not fit)."""
    listed = read_result("memory.list", data)
    if not isinstance(listed, MemoryList):
        log.warning("memory.list answered data that does not fit the catalogue; ignoring it")
        return []
    return [m.text for m in listed.memories if m.text.strip()]
