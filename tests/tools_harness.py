"""Helpers for tools-worker tests: call a tool through the bus, run the service in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tools_worker.embeddings import MiniLMEmbedding
from tools_worker.settings import ToolsSettings
from tools_worker.worker import ToolsService
from voicefleet.bus import Bus
from voicefleet.messages import ToolCall, ToolResult
from voicefleet.settings import BusSettings


async def call(
    bus: Bus,
    name: str,
    args: dict[str, Any] | None = None,
    user: str = "alice",
    session_id: str = "",
    call_id: str | None = None,
    wait_s: float = 20.0,
) -> ToolResult:
    """Enqueue one ToolCall on keys.tools and wait for its answer, as the orchestrator does."""
    msg = ToolCall(user=user, name=name, args=args or {}, session_id=session_id, turn_id="t1")
    if call_id:
        msg.call_id = call_id
    await bus.enqueue(bus.keys.tools, msg)
    result = await bus.wait_reply(msg.call_id, wait_s)
    assert isinstance(result, ToolResult), f"no answer to {name} within {wait_s}s"
    return result


def tools_settings(bus_settings: BusSettings, data_dir: Path, **overrides: Any) -> ToolsSettings:
    # _env_file=None: a developer's .env must not change what tests see. No folders and no web search
    # unless a test asks: the defaults (~/Documents, ddgs over the internet) depend on the machine.
    defaults: dict[str, Any] = {"search_dirs": [], "web_provider": "searxng" if "searxng_url" in overrides else "off"}
    return ToolsSettings(
        _env_file=None,  # type: ignore[call-arg]
        bus=bus_settings,
        data_dir=data_dir,
        timer_poll_s=0.1,
        index_on_start=True,
        reindex_every_s=0,
        **{**defaults, **overrides},
    )


async def indexed(service: ToolsService, files: int) -> None:
    """Wait (30 s at most) until the background pass at start has indexed ``files`` files."""
    async with asyncio.timeout(30):
        while service.file_search is None or service.file_search.files < files:  # noqa: ASYNC110 - indexer thread
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(settings: ToolsSettings, embedder: MiniLMEmbedding) -> AsyncIterator[ToolsService]:
    """A ToolsService running in this event loop until the block ends.

    Calls enqueued before its consumer group exists are still read: the group starts at id 0.
    """
    service = ToolsService(settings, embedder=embedder)
    runner = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(30):
            while not service.ready:
                if runner.done():
                    runner.result()
                await asyncio.sleep(0.05)
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(runner, 15)
