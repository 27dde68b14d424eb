"""The orchestrator with the real embedded model (SmolLM2 in llama.cpp) against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from llm_harness import (
    entry_ms,
    eventually,
    load_llama,
    messages,
    read_until_done,
    running_service,
    send_turn,
    speak_entries,
)

from llm_orchestrator.backends import LlamaCppBackend
from llm_orchestrator.history import HistoryEntry
from voicefleet.bus import Bus
from voicefleet.messages import Error, ReplyDelta, ReplyDone, SpeakRequest, now
from voicefleet.sessions import Sessions
from voicefleet.settings import BusSettings

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppBackend]:
    backend = load_llama()
    yield backend
    backend._llm.shutdown()


async def has_speech(bus: Bus, turn_id: str) -> bool:
    return bool(await speak_entries(bus, turn_id))


async def all_acked(bus: Bus) -> bool:
    return (await bus.redis.xpending(bus.keys.turns, "llm"))["pending"] == 0


async def history_of(bus: Bus, session_id: str) -> list[HistoryEntry]:
    raw = await bus.redis.lrange(bus.keys.history(session_id), 0, -1)
    return [e for e in map(HistoryEntry.from_json, raw) if e is not None]


async def test_a_question_gets_a_streamed_spoken_reply(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    await bus.redis.hset(
        bus.keys.session("s1"),
        mapping={"user": "ada", "voice": "joe", "speech_rate": "1.2", "output_sample_rate": "24000"},
    )
    async with running_service(bus_settings, [llama], max_tokens=64):
        turn = await send_turn(bus, "s1", "Tell me about the sun.")
        out = await read_until_done(bus, "s1", turn.turn_id)
    deltas = messages(out, ReplyDelta)
    done = messages(out, ReplyDone)[-1]
    assert len(deltas) > 5 and "".join(d.text for d in deltas) == done.text
    assert done.backend == "llamacpp" and not done.interrupted

    speak = await speak_entries(bus, turn.turn_id)
    requests: list[SpeakRequest] = [e.message for e in speak]  # type: ignore[misc]
    assert [r.seq for r in requests] == list(range(done.chunks)) and done.chunks >= 2
    assert [r.final for r in requests] == [False] * (done.chunks - 1) + [True]
    # The output rate is no longer the orchestrator's business: 0 = the TTS worker reads it from the session.
    assert all(r.voice == "joe" and r.speech_rate == 1.2 and r.sample_rate == 0 for r in requests)
    assert " ".join(r.text for r in requests) == done.text.strip()
    # The first chunk went to TTS while the model was still writing: its
    # stream entry is older than the last token's delta.
    last_delta = [e for e in out if isinstance(e.message, ReplyDelta)][-1]
    assert entry_ms(speak[0]) < entry_ms(last_delta)
    stages = requests[0].ts
    assert stages["transcript"] <= stages["llm_request"] <= stages["llm_first_token"] <= stages["first_chunk"]
    assert stages["first_chunk"] < done.ts["llm_done"]

    history = await history_of(bus, "s1")
    assert [(h.role, h.content) for h in history] == [("user", turn.text), ("assistant", done.text)]


async def test_cancel_stops_the_reply_and_history_keeps_what_was_spoken(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    async with running_service(bus_settings, [llama], max_tokens=400):
        turn = await send_turn(bus, "s2", "Write a long story about a dragon and a knight.")
        await eventually(lambda: has_speech(bus, turn.turn_id))
        await bus.cancel("s2", turn.turn_id, reason="barge_in")
        out = await read_until_done(bus, "s2", turn.turn_id)
        done = messages(out, ReplyDone)[-1]
        await asyncio.sleep(0.3)  # nothing more may come for this turn
        later = await bus.read(bus.keys.out("s2"), out[-1].id, block_ms=10)
        assert not [e for e in later if e.message is not None and e.message.turn_id == turn.turn_id]

        # The model thread let go of the generation: it takes the next job at once.
        await asyncio.wait_for(llama._llm.run_on_model_thread(lambda: None), 10)
        assert llama._llm.running == 0  # and its llama.cpp context is free

    assert done.interrupted
    spoken = [e.message for e in await speak_entries(bus, turn.turn_id)]
    assert len(spoken) == done.chunks and not any(s.final for s in spoken)
    written = "".join(d.text for d in messages(out, ReplyDelta))
    assert len(written.split()) < 300  # stopped long before max_tokens
    said = " ".join(s.text for s in spoken)
    assert done.text == said
    history = await history_of(bus, "s2")
    assert history[1].role == "assistant" and history[1].interrupted and history[1].content == said


async def test_a_new_turn_cancels_the_running_one(bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend) -> None:
    async with running_service(bus_settings, [llama], max_tokens=400, concurrency=2, tool_timeout_s=0.2):
        first = await send_turn(bus, "s3", "Write a long story about a dragon and a knight.")
        await eventually(lambda: has_speech(bus, first.turn_id))
        # Typed, and a command: answered without the model (no tools worker here: it says so).
        second = await send_turn(bus, "s3", "What time is it?", source="text")
        out_second = await read_until_done(bus, "s3", second.turn_id)
        out_first = await read_until_done(bus, "s3", first.turn_id)  # whichever came first
    assert messages(out_first, ReplyDone, first.turn_id)[-1].interrupted
    assert not messages(out_second, ReplyDone, second.turn_id)[-1].interrupted
    assert await bus.is_cancelled("s3", first.turn_id)  # TTS and the gateway were told too


async def test_a_turn_of_a_dead_worker_is_taken_over_without_repeating_speech(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    await bus.ensure_group(bus.keys.turns, "llm")
    turn = await send_turn(bus, "s4", "Tell me about the sun.")
    stale = await send_turn(bus, "s5", "What time was it?", ts={"transcript": now() - 600})
    # A worker took both, spoke the first sentence of the first turn, and died.
    taken = await bus.read_group(bus.keys.turns, "llm", "llm-dead-worker", count=10, block_ms=100)
    assert len(taken) == 2
    progress = bus.keys.turn_progress
    await bus.redis.hset(progress("s4", turn.turn_id), mapping={"owner": "llm-dead-worker", "chunks": 1})
    await bus.redis.hset(progress("s5", stale.turn_id), mapping={"owner": "llm-dead-worker", "chunks": 0})

    async with running_service(bus_settings, [llama], max_tokens=64):
        out = await read_until_done(bus, "s4", turn.turn_id)
        out_stale = await read_until_done(bus, "s5", stale.turn_id)
        await eventually(lambda: all_acked(bus))  # nothing is left for another worker
    done = messages(out, ReplyDone, turn.turn_id)[-1]
    seqs = [e.message.seq for e in await speak_entries(bus, turn.turn_id)]
    assert done.chunks >= 2 and seqs == list(range(1, done.chunks))  # seq 0 was not spoken again
    assert [e.code for e in messages(out_stale, Error, stale.turn_id)] == ["turn_expired"]


async def test_a_late_cancelled_turn_does_not_supersede_the_current_one(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    sessions = Sessions(bus)
    late = await send_turn(bus, "s7", "An old question.")
    await bus.cancel("s7", late.turn_id, "superseded")  # the session moved on before it was picked up
    current = await sessions.start_turn("s7")
    async with running_service(bus_settings, [llama]):
        out = await read_until_done(bus, "s7", late.turn_id)
    assert messages(out, ReplyDone, late.turn_id)[-1].interrupted
    assert await sessions.current_turn("s7") == current and not await bus.is_cancelled("s7", current)
