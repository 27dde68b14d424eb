"""Helpers for the orchestrator tests: run the service in-process, send turns, read what it sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fleet import eventually

from llm_orchestrator.backends import Backend, LlamaCppBackend, LlamaCppLLM
from llm_orchestrator.settings import LlmSettings
from llm_orchestrator.worker import LlmService
from voicefleet.bus import Bus, Entry
from voicefleet.messages import Message, ReplyDone, SpeakRequest, TurnRequest, new_id, now
from voicefleet.models import smollm2_gguf
from voicefleet.settings import BusSettings


def load_llama(max_tokens: int = 48) -> LlamaCppBackend:
    """The packaged SmolLM2, loaded (tests share one per module), greedy for repeatable replies."""
    llm = LlamaCppLLM(model_path=str(smollm2_gguf()), n_threads=2, n_ctx=2048, max_tokens=max_tokens, temperature=0)
    llm.load()
    return LlamaCppBackend(llm)


@asynccontextmanager
async def running_service(
    bus_settings: BusSettings, backends: Sequence[Backend], **overrides: Any
) -> AsyncIterator[LlmService]:
    """An orchestrator running in this event loop until the block ends."""
    options: dict[str, Any] = {
        "temperature": 0,
        "max_tokens": 48,
        "first_token_timeout_s": 10,
        "last_resort_timeout_s": 60,
    }
    options.update(overrides)
    service = LlmService(LlmSettings(bus=bus_settings, **options), backends=backends)
    runner = asyncio.create_task(service.run())
    try:

        async def listening() -> bool:  # ready, and subscribed to cancels before the test sends any
            channel = service.keys.cancel_channel
            return service.ready and (await service.bus.redis.pubsub_numsub(channel))[0][1] >= 1

        await eventually(listening)
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(runner, 15)


async def send_turn(bus: Bus, session_id: str, text: str, **fields: Any) -> TurnRequest:
    fields.setdefault("turn_id", new_id())
    fields.setdefault("ts", {"transcript": now()})
    turn = TurnRequest(session_id=session_id, text=text, **fields)
    await bus.enqueue(bus.keys.turns, turn)
    return turn


async def read_until_done(bus: Bus, session_id: str, turn_id: str, within: float = 60) -> list[Entry]:
    """Entries of the session's out stream up to the ReplyDone of ``turn_id``."""
    seen: list[Entry] = []
    last: bytes | str = "0"
    async with asyncio.timeout(within):
        while True:
            for entry in await bus.read(bus.keys.out(session_id), last, block_ms=200):
                last = entry.id
                seen.append(entry)
                if isinstance(entry.message, ReplyDone) and entry.message.turn_id == turn_id:
                    return seen


def messages(entries: list[Entry], kind: type[Message] = Message, turn_id: str | None = None) -> list[Any]:
    return [
        e.message for e in entries if isinstance(e.message, kind) and (turn_id is None or e.message.turn_id == turn_id)
    ]


async def speak_entries(bus: Bus, turn_id: str) -> list[Entry]:
    entries = await bus.read(bus.keys.speak, "0", block_ms=10, count=1000)
    return [e for e in entries if isinstance(e.message, SpeakRequest) and e.message.turn_id == turn_id]


def entry_ms(entry: Entry) -> int:
    """The millisecond timestamp inside a stream entry id."""
    return int(entry.id.split(b"-")[0])
