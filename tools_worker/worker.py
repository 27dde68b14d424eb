"""The tools service: answers ``ToolCall`` work from ``keys.tools`` and fires timers.

Every call gets exactly one ``ToolResult`` on ``keys.reply(call_id)``: the
tool's answer, a refusal, or an error after ``call_timeout_s``. A call held by
a worker that died is reclaimed by another one (``Service.consume``); tools
that change data keep their answer per ``call_id`` so the retry repeats the
answer instead of the effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from llama_index.core import Settings as LlamaSettings

from voicefleet import tracing
from voicefleet.bus import REDIS_DOWN, Backoff
from voicefleet.messages import Message, ToolCall, ToolResult
from voicefleet.remote_tools import RemoteCatalogue
from voicefleet.service import Service

from . import records
from .book import Book
from .clock import Clock
from .embeddings import MiniLMEmbedding, load_embedder
from .file_index import FileSearch, Indexer, open_index_db
from .files import FilesTools
from .mcp_client import McpTools
from .memory import MemoryTools
from .notes import NotesTools
from .paths import SafePaths
from .records import Kind
from .registry import Registry, failure
from .settings import ToolsSettings
from .store import Database
from .timers import Timers
from .web import WebTools, choose_provider

log = logging.getLogger(__name__)

GROUP = "tools"


class ToolsService(Service):
    """Notes, memory, file search, web search, timers and time, per user; and the tools of MCP servers."""

    name = "tools"

    def __init__(self, settings: ToolsSettings, embedder: MiniLMEmbedding | None = None) -> None:
        super().__init__(settings)
        self.config = settings
        self.embedder = embedder  # tests share one; otherwise loaded in setup()
        self.db: Database | None = None
        self.index_db: Database | None = None
        self.file_search: FileSearch | None = None
        self.indexer: Indexer | None = None
        self.files: FilesTools | None = None
        self.web: WebTools | None = None
        self.timers: Timers | None = None
        self.registry = Registry()
        self.mcp: McpTools | None = None
        self.answered = 0

    async def setup(self) -> None:
        s = self.config
        self.db = await asyncio.to_thread(Database, s.notes_db, records.MIGRATIONS)
        if self.embedder is None:
            self.embedder = await asyncio.to_thread(load_embedder, s.embed_threads)
        # llama-index's default embed model is OpenAI's: never let it be picked up.
        LlamaSettings.embed_model = self.embedder
        safe = SafePaths(s.search_dirs)
        if s.search_dirs:
            self.index_db = await asyncio.to_thread(open_index_db, s.index_db)
            self.file_search = FileSearch(self.index_db, self.embedder)
            await asyncio.to_thread(self.file_search.refresh)
            self.indexer = Indexer(
                self.index_db,
                self.embedder,
                safe,
                s.data_dir / "file_index.lock",
                chunk_tokens=s.chunk_tokens,
                max_bytes=int(s.max_file_mb * (1 << 20)),
            )
        self.files = FilesTools(self.file_search, safe)
        provider = choose_provider(s.web_provider, s.searxng_url, s.web_timeout_s)
        self.web = WebTools(provider, s.web_max_results)
        self.timers = Timers(self.bus, s.max_timer_s, s.max_timers_per_user, s.timer_poll_s)
        self.mcp = McpTools(s, RemoteCatalogue(self.bus))
        await self.mcp.start()
        self.registry = Registry.of(
            [
                *NotesTools(Book(self.db, Kind.NOTE, "note", self.embedder)).tools(),
                *MemoryTools(Book(self.db, Kind.MEMORY, "memory", self.embedder)).tools(),
                *self.files.tools(),
                *self.web.tools(),
                *self.timers.tools(),
                *Clock(s.timezone).tools(),
            ],
            db=self.db,
            remote=self.mcp.dispatch,
        )
        log.info(
            "tools: %s; file search over %s; web search %s; MCP servers: %s",
            ", ".join(sorted(self.registry.tools)),
            ", ".join(str(d) for d in s.search_dirs) or "nothing",
            f"via {provider.name}" if provider else "off",
            ", ".join(sorted(s.mcp_servers)) or "none",
        )

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        assert self.timers is not None
        loops = [
            self.consume(self.keys.tools, GROUP, self.handle, concurrency=self.config.concurrency),
            self.timers.run(),
        ]
        if self.indexer is not None:
            loops.append(self.reindex())
        if self.mcp is not None:
            loops += self.mcp.loops()
        return loops

    def status(self) -> dict[str, Any]:
        return {
            "tools": len(self.registry.tools),
            "answered": self.answered,
            "indexed_files": self.file_search.files if self.file_search else 0,
            "indexed_passages": self.file_search.chunks if self.file_search else 0,
            "timers_fired": self.timers.fired if self.timers else 0,
            "mcp": self.mcp.status() if self.mcp else {},
        }

    async def handle(self, msg: Message) -> None:
        if not isinstance(msg, ToolCall):
            log.warning("ignoring %s on the tools stream", msg.type, extra={"session": msg.session_id})
            return
        with tracing.span("tools.execute", msg, kind=tracing.SpanKind.CONSUMER, tool=msg.name):
            await self._execute(msg)

    async def _execute(self, msg: ToolCall) -> None:
        extra = {"session": msg.session_id, "turn": msg.turn_id}
        try:
            result = await asyncio.wait_for(self.registry.dispatch(msg), self.config.call_timeout_s)
        except TimeoutError:
            log.warning("%s timed out", msg.name, extra=extra)
            result = failure(msg, "Sorry, that took too long, so I gave up.", "timeout")
        except Exception:
            log.exception("%s failed", msg.name, extra=extra)
            result = failure(msg, "Sorry, something went wrong with that tool.", "internal")
        tracing.set_attributes(ok=result.ok)
        # Notes and memories live in SQLite; timers and the rest in Redis: with VF_REDIS_WAIT_REPLICAS, a replica
        # holds them before the user hears "done", so a failover of the primary cannot lose them.
        with contextlib.suppress(*REDIS_DOWN):
            await self.bus.replicated()
        await self._reply(msg.call_id, result)
        self.answered += 1
        log.info("%s -> %s", msg.name, "ok" if result.ok else "refused", extra=extra)

    async def _reply(self, call_id: str, result: ToolResult) -> None:
        # The caller is waiting: ride out a short Redis outage instead of dropping the answer.
        backoff = Backoff()
        for attempt in range(8):
            try:
                await self.bus.reply(call_id, result)
                return
            except REDIS_DOWN:
                if attempt == 7:
                    raise
                await backoff.wait()

    async def reindex(self) -> None:
        """Look for changed files at start (optional) and every ``reindex_every_s``."""
        s = self.config
        assert self.indexer is not None and self.file_search is not None and self.files is not None
        due_now = s.index_on_start
        while True:
            if not due_now:
                if not s.reindex_every_s:
                    await asyncio.Event().wait()  # a loop that returns would stop the service
                await asyncio.sleep(s.reindex_every_s)
            due_now = False
            self.files.indexing = True
            try:
                # Another process indexing right now is fine: skip, its result shows up by generation.
                report = await asyncio.to_thread(self.indexer.sync, False, False)
                if report is not None:
                    await asyncio.to_thread(self.file_search.refresh)
            except Exception:
                log.exception("background indexing failed")
            finally:
                self.files.indexing = False

    async def teardown(self) -> None:
        if self.web is not None:
            await self.web.close()
        for db in (self.db, self.index_db):
            if db is not None:
                await asyncio.to_thread(db.close)
