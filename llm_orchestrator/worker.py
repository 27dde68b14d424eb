"""The orchestrator service: takes turns from the bus and answers them.

Turns come from the work stream ``keys.turns`` through the consumer group
``llm``, so several orchestrator processes share them and a turn held by a
process that died is taken over by another (see :class:`reply.TurnProgress`).
Cancels arrive on the pub/sub channel and stop the matching running turn.
A new turn of a session cancels the session's previous turn, in whichever
process that is (the rule lives in :meth:`voicefleet.sessions.Sessions.start_turn`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from voicefleet import tracing
from voicefleet.messages import Cancel, Message, TurnRequest
from voicefleet.service import Service
from voicefleet.sessions import Sessions

from .backends import Backend, FallbackChain, build_backends
from .history import History
from .intents import IntentParser
from .prompt import PromptBuilder
from .settings import LlmSettings
from .tools_client import ToolsClient
from .turn import Turn, TurnContext

log = logging.getLogger(__name__)

GROUP = "llm"


def _intent_parser(settings: LlmSettings) -> IntentParser:
    """Templates of every language, plus the nearest-template stage when enabled (loads MiniLM)."""
    extra = tuple(settings.intent_file_paths)
    if not (settings.intents and settings.intent_nearest):
        return IntentParser(extra_files=extra)
    from .intents.nearest import load_nearest

    return IntentParser(second_stage=load_nearest(threads=1, threshold=settings.intent_threshold), extra_files=extra)


class LlmService(Service):
    """Turns transcripts and typed text into streamed, spoken replies."""

    name = "llm"

    def __init__(self, settings: LlmSettings, backends: Sequence[Backend] | None = None) -> None:
        super().__init__(settings)
        self.llm_settings = settings
        self._given_backends = list(backends) if backends is not None else None
        self.backends: list[Backend] = []
        self.active: dict[tuple[str, str], Turn] = {}  # (session, turn) -> a turn running in this process
        self.sessions = Sessions(self.bus)
        self.ctx: TurnContext | None = None

    async def setup(self) -> None:
        settings = self.llm_settings
        persona = await asyncio.to_thread(settings.persona_path.read_text, encoding="utf-8")
        prompt = PromptBuilder(persona)
        self.backends = self._given_backends if self._given_backends is not None else build_backends(settings)
        for backend in self.backends:
            await backend.start(prompt.warm_messages())
        chain = FallbackChain(
            self.backends,
            first_token_timeout_s=settings.first_token_timeout_s,
            last_resort_timeout_s=settings.last_resort_timeout_s,
            retries=settings.backend_retries,
            backoff_s=settings.retry_backoff_s,
            cooldown_s=settings.backend_cooldown_s,
        )
        self.ctx = TurnContext(
            bus=self.bus,
            settings=settings,
            chain=chain,
            history=History(self.bus, settings.history_turns, settings.history_tokens, settings.history_ttl_s),
            tools=ToolsClient(self.bus, settings.tool_timeout_s, settings.memory_timeout_s, settings.memory_cache_s,
                              settings.remote_tools_cache_s),
            prompt=prompt,
            instance=self.instance,
            intents=await asyncio.to_thread(_intent_parser, settings),
        )
        log.info("backends: %s", ", ".join(b.name for b in self.backends))

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        return [
            self.consume(self.keys.turns, GROUP, self.handle, concurrency=self.llm_settings.concurrency),
        ]

    def status(self) -> dict[str, Any]:
        return {"turns": len(self.active), "backends": [b.describe() for b in self.backends]}

    async def teardown(self) -> None:
        if self._given_backends is None:
            for backend in self.backends:
                await backend.close()

    # ------------------------------------------------------------------
    async def handle(self, msg: Message) -> None:
        if not isinstance(msg, TurnRequest):
            log.warning("ignoring %s on the turns stream", msg.type)
            return
        assert self.ctx is not None
        with tracing.span("llm.turn", msg, kind=tracing.SpanKind.CONSUMER, source=msg.source):
            await self._answer(msg)

    async def _answer(self, msg: TurnRequest) -> None:
        assert self.ctx is not None
        turn = Turn(self.ctx, msg)
        key = (msg.session_id, msg.turn_id)
        # A turn that reached us without its starter saying so (or whose starter died) supersedes
        # the session's previous one here; an already cancelled (late, reclaimed) turn must not.
        if not await self.bus.is_cancelled(msg.session_id, msg.turn_id):
            await self.sessions.start_turn(msg.session_id, msg.turn_id)
        self.active[key] = turn
        try:
            await turn.run()
        finally:
            if self.active.get(key) is turn:
                del self.active[key]

    async def on_cancel(self, cancel: Cancel) -> None:
        for (session_id, turn_id), turn in list(self.active.items()):
            if session_id == cancel.session_id and (not cancel.turn_id or cancel.turn_id == turn_id):
                log.info("cancel (%s)", cancel.reason, extra={"session": session_id, "turn": turn_id})
                turn.cancel(cancel.reason)
