"""The orchestrator service: takes turns from the bus and answers them.

Turns come from the work stream ``keys.turns`` through the consumer group
``llm``, so several orchestrator processes share them and a turn held by a
process that died is taken over by another (see :class:`reply.TurnProgress`).
Cancels arrive on the pub/sub channel and stop the matching running turn.
A new turn of a session cancels the session's previous turn if it is still
running, in whichever process that is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from voicefleet.bus import REDIS_DOWN
from voicefleet.messages import Message, TurnRequest
from voicefleet.service import Service

from .backends import Backend, FallbackChain, build_backends
from .history import History
from .intents import IntentParser
from .prompt import PromptBuilder
from .settings import LlmSettings
from .tools_client import ToolsClient
from .turn import Turn, TurnContext

log = logging.getLogger(__name__)

GROUP = "llm"
#: How long the "turn running now" marker of a session lives if its worker dies.
RUNNING_TTL_MS = 120_000

# Delete the session's running-turn marker only if it still names this turn.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _intent_parser(settings: LlmSettings) -> IntentParser:
    """Templates of every language, plus the nearest-template stage when enabled (loads MiniLM)."""
    if not (settings.intents and settings.intent_nearest):
        return IntentParser()
    from .intents.nearest import load_nearest

    return IntentParser(second_stage=load_nearest(threads=1, threshold=settings.intent_threshold))


class LlmService(Service):
    """Turns transcripts and typed text into streamed, spoken replies."""

    name = "llm"

    def __init__(self, settings: LlmSettings, backends: Sequence[Backend] | None = None) -> None:
        super().__init__(settings)
        self.llm_settings = settings
        self._given_backends = list(backends) if backends is not None else None
        self.backends: list[Backend] = []
        self.active: dict[str, Turn] = {}  # session id -> its running turn in this process
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
            tools=ToolsClient(self.bus, settings.tool_timeout_s, settings.memory_timeout_s, settings.memory_cache_s),
            prompt=prompt,
            instance=self.instance,
            intents=await asyncio.to_thread(_intent_parser, settings),
        )
        log.info("backends: %s", ", ".join(b.name for b in self.backends))

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        return [
            self.consume(self.keys.turns, GROUP, self.handle, concurrency=self.llm_settings.concurrency),
            self.listen_cancels(),
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
        turn = Turn(self.ctx, msg)
        await self._supersede(turn)
        self.active[msg.session_id] = turn
        try:
            await turn.run()
        finally:
            if self.active.get(msg.session_id) is turn:
                del self.active[msg.session_id]
            try:
                await self.bus.redis.eval(_RELEASE, 1, self._running_key(msg.session_id), msg.turn_id)
            except REDIS_DOWN:
                pass

    def _running_key(self, session_id: str) -> str:
        return self.keys.owner(session_id, "llm")

    async def _supersede(self, turn: Turn) -> None:
        """Cancel the session's previous turn if it is still being answered, here or elsewhere."""
        previous_id = await self.bus.redis.set(
            self._running_key(turn.session_id), turn.turn_id, px=RUNNING_TTL_MS, get=True
        )
        previous = previous_id.decode() if isinstance(previous_id, bytes) else ""
        local = self.active.get(turn.session_id)
        if local is not None and local.turn_id != turn.turn_id:
            local.cancel("superseded by a new turn")
            previous = previous or local.turn_id
        if previous and previous != turn.turn_id:
            # Broadcast: the process running it stops, TTS and the gateway drop its audio.
            await self.bus.cancel(turn.session_id, previous, reason="superseded")

    async def listen_cancels(self) -> None:
        async for cancel in self.bus.cancels():
            turn = self.active.get(cancel.session_id)
            if turn is not None and (not cancel.turn_id or cancel.turn_id == turn.turn_id):
                log.info("cancel (%s)", cancel.reason, extra={"session": cancel.session_id, "turn": turn.turn_id})
                turn.cancel(cancel.reason)
