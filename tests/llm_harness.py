"""Helpers for the orchestrator tests: run the service in-process, send turns, read what it sent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fleet import eventually
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import LLM
from llama_index.core.tools import BaseTool

from llm_orchestrator.backends import Backend, LlamaCppBackend, LlamaCppLLM, Piece, ToolRequest
from llm_orchestrator.settings import LlmSettings
from llm_orchestrator.worker import LlmService
from voicefleet.bus import Bus, Entry
from voicefleet.messages import Message, ReplyDone, SpeakRequest, TurnRequest, new_id, now
from voicefleet.models import smollm2_gguf
from voicefleet.settings import BusSettings


class FakeBackend(Backend):
    """Answers with fixed words, fails, never answers, or asks for a tool: for the orchestrator's logic only."""

    def __init__(
        self,
        name: str,
        behaviour: str = "ok",
        words: Sequence[str] = ("Hi", " there."),
        call: ToolRequest | None = None,
    ) -> None:
        self.name = name
        self.behaviour = behaviour
        self.words = words
        self.call = call  # a call made under a grammar (no message: the tool's answer is spoken)
        self.calls = 0
        self.prompts: list[list[ChatMessage]] = []  # the messages of each call

    @property
    def llm(self) -> LLM:
        raise NotImplementedError

    @property
    def supports_tools(self) -> bool:
        return self.call is not None

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        seed: int | None = None,
        tools: Sequence[BaseTool] | None = None,
        spoken: threading.Event | None = None,
    ) -> AsyncIterator[Piece]:
        self.calls += 1
        self.prompts.append(list(messages))
        if self.call is not None and tools:
            yield Piece(tool_calls=[self.call])
            return
        if self.behaviour == "down":
            raise ConnectionError("connection refused")
        if self.behaviour == "silent":
            await asyncio.sleep(60)
        if self.behaviour == "slow":
            await asyncio.sleep(0.05)
        for i, word in enumerate(self.words):
            if self.behaviour == "stall" and i == 1:
                await asyncio.sleep(60)
            yield Piece(text=word)


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
