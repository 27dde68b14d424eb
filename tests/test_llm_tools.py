"""Explicit commands reach the tools worker over a real Redis; this test plays the tools worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llm_harness import load_llama, messages, read_until_done, running_service, send_turn, speak_entries

from llm_orchestrator.backends import LlamaCppBackend
from llm_orchestrator.tools_client import NO_ANSWER
from voicefleet.bus import Bus
from voicefleet.messages import ReplyDone, ToolCall, ToolResult
from voicefleet.settings import BusSettings

pytestmark = pytest.mark.models

COMMANDS: list[tuple[str, str, dict[str, Any]]] = [
    ("Take a note that I need to buy milk.", "notes.add", {"text": "I need to buy milk"}),
    ("Note that the meeting moved to Friday.", "notes.add", {"text": "the meeting moved to Friday"}),
    ("Read my notes.", "notes.list", {}),
    ("Search my notes for milk.", "notes.search", {"query": "milk"}),
    ("Read note three.", "notes.read", {"id": "3"}),
    ("Delete the note about milk.", "notes.delete", {"query": "milk"}),
    ("Remember that my sister is called Anna.", "memory.remember", {"text": "my sister is called Anna"}),
    ("What do you remember about me?", "memory.list", {}),
    ("Forget my sister's name.", "memory.forget", {"query": "my sister's name"}),
    ("Find the file about the tax return.", "files.search", {"query": "the tax return"}),
    ("Search the web for the weather in Paris.", "web.search", {"query": "the weather in Paris"}),
    ("Set a timer for five minutes for pasta.", "timer.set", {"seconds": 300, "label": "pasta"}),
    ("Cancel the timer.", "timer.cancel", {}),
    ("What time is it?", "time.now", {}),
]


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppBackend]:
    backend = load_llama()
    yield backend
    backend._llm.shutdown()


async def next_tool_call(bus: Bus) -> ToolCall:
    async with asyncio.timeout(10):
        while True:
            entries = await bus.read_group(bus.keys.tools, "tools", "test-tools", count=1, block_ms=200)
            for entry in entries:
                await bus.ack(bus.keys.tools, "tools", entry.id)
                assert isinstance(entry.message, ToolCall)
                return entry.message


async def test_each_command_reaches_its_tool_and_the_result_is_spoken(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    await bus.ensure_group(bus.keys.tools, "tools")
    async with running_service(bus_settings, [llama]):
        for text, tool, args in COMMANDS:
            turn = await send_turn(bus, "s1", text, user="ada")
            call = await next_tool_call(bus)
            assert (call.name, call.args) == (tool, args), text
            assert (call.user, call.session_id, call.turn_id) == ("ada", "s1", turn.turn_id)
            answer = f"Done: {tool}."
            await bus.reply(call.call_id, ToolResult(call_id=call.call_id, name=tool, ok=True, text=answer))
            out = await read_until_done(bus, "s1", turn.turn_id)
            assert [c.call_id for c in messages(out, ToolCall, turn.turn_id)] == [call.call_id]
            assert [r.text for r in messages(out, ToolResult, turn.turn_id)] == [answer]
            done = messages(out, ReplyDone, turn.turn_id)[-1]
            assert done.text == answer and done.backend == ""  # no model involved
            spoken = [e.message for e in await speak_entries(bus, turn.turn_id)]
            assert [(s.text, s.final) for s in spoken] == [(answer, True)]


async def test_a_silent_tools_worker_is_reported_in_one_sentence(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    async with running_service(bus_settings, [llama], tool_timeout_s=0.3):
        turn = await send_turn(bus, "s2", "Set a timer for ten minutes.")
        out = await read_until_done(bus, "s2", turn.turn_id)
    result = messages(out, ToolResult, turn.turn_id)[-1]
    assert not result.ok and result.text == NO_ANSWER
    assert [e.message.text for e in await speak_entries(bus, turn.turn_id)] == [NO_ANSWER]
    # The call was withdrawn: a tools worker starting later will not set a stale timer.
    assert await bus.redis.xlen(bus.keys.tools) == 0


async def test_the_users_memory_is_fetched_for_the_prompt_and_cached(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    await bus.ensure_group(bus.keys.tools, "tools")
    async with running_service(bus_settings, [llama], max_tokens=16, memory_timeout_s=5):
        await bus.beat("tools", "test-tools", {"ready": True})  # a tools worker is alive (its key lives 2 s)
        turn = await send_turn(bus, "s3", "What is my name?", user="ada")
        call = await next_tool_call(bus)
        assert (call.name, call.user) == ("memory.list", "ada")
        data = {"memories": [{"id": 1, "text": "The user's name is Ada.", "created": 0.0, "updated": 0.0}]}
        await bus.reply(call.call_id, ToolResult(call_id=call.call_id, ok=True, text="One thing.", data=data))
        out = await read_until_done(bus, "s3", turn.turn_id)
        assert messages(out, ReplyDone)[-1].backend == "llamacpp"
        assert not messages(out, ToolCall)  # the memory lookup is not shown to the client

        second = await send_turn(bus, "s3", "Thanks!", user="ada")
        await read_until_done(bus, "s3", second.turn_id)
        assert await bus.redis.xlen(bus.keys.tools) == 1  # the memory came from the cache


async def test_no_tools_worker_no_memory_wait(bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend) -> None:
    async with running_service(bus_settings, [llama], max_tokens=8, memory_timeout_s=30):
        turn = await send_turn(bus, "s4", "Hello there!", user="ada")
        out = await read_until_done(bus, "s4", turn.turn_id, within=20)  # would take 30 s if it waited
    assert messages(out, ReplyDone)[-1].text
    assert await bus.redis.xlen(bus.keys.tools) == 0
