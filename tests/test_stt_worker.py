"""The STT service against the real Redis and the real models: sessions, turns, wake word, barge-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from fleet import eventually
from speech import say, silence
from stt_client import FakeGatewaySession

from bench.stt_bench import longest_pause
from vad_stt_worker.hallucinations import normalize_text
from vad_stt_worker.models import Models
from vad_stt_worker.settings import SttSettings
from vad_stt_worker.worker import SttService
from voicefleet import tracing
from voicefleet.bus import Bus
from voicefleet.messages import (
    BARGE_IN_UNHEARD,
    Configure,
    PlaybackFinished,
    PlaybackStarted,
    TranscriptFinal,
    TurnRequest,
)
from voicefleet.settings import BusSettings

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def models() -> Models:
    return Models.load(SttSettings(), warm=False)


@pytest.fixture
async def service(bus_settings: BusSettings, models: Models) -> AsyncIterator[SttService]:
    svc = SttService(SttSettings(bus=bus_settings, scan_interval_s=0.3), models=models)
    runner = asyncio.create_task(svc.run())
    async with asyncio.timeout(30):
        while not svc.ready:  # noqa: ASYNC110 - polls state set elsewhere
            await asyncio.sleep(0.05)
    yield svc
    svc.stop()
    await asyncio.wait_for(runner, 15)


def word_errors(heard: str, expected: str) -> int:
    a, b = normalize_text(heard).split(), normalize_text(expected).split()
    # Levenshtein distance over words
    row = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, other in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (word != other))
    return row[-1]


async def until_cancelled(bus: Bus, sid: str, turn: str, within: float = 10) -> None:
    async with asyncio.timeout(within):
        while not await bus.is_cancelled(sid, turn):  # noqa: ASYNC110 - polls state set elsewhere
            await asyncio.sleep(0.05)


def is_final(msg: object) -> bool:
    return isinstance(msg, TranscriptFinal)


async def test_a_spoken_command_becomes_a_turn(bus: Bus, service: SttService) -> None:
    session = FakeGatewaySession(bus, user="alice")
    await session.open()
    sentence = (
        "Turn on the kitchen lights, close the blinds in the bedroom, and play some quiet music in the living room."
    )
    # Real-time pacing, as from a microphone: partial transcripts come while speaking.
    await session.stream(np.concatenate([silence(0.5), say(sentence), silence(0.8)]), realtime=True)
    # smart-turn may call the sentence complete at a comma and the half turn be handed on before the
    # person goes on (how often depends on how fast Whisper is); the rest then continues that utterance:
    # the next final holds the whole sentence and the half turn is cancelled.
    final = await session.wait_for(lambda m: is_final(m) and word_errors(m.text, sentence) <= 2, within=20)
    assert isinstance(final, TranscriptFinal)
    halves = [m for m in session.of_type("transcript_final") if m.turn_id != final.turn_id]
    assert len(halves) <= 1 and all(sentence.startswith(h.text.rstrip(".")) for h in halves), halves
    for half in halves:
        assert await bus.is_cancelled(session.sid, half.turn_id)
    kinds = [m.type for m in session.events]
    assert kinds.index("speech_started") < kinds.index("speech_stopped") < kinds.index("transcript_final")
    assert "transcript_partial" in kinds[: kinds.index("transcript_final")]
    started = session.of_type("speech_started")[0]
    assert 300 <= started.audio_ms <= 700  # speech begins 0.5 s in
    # The turn goes to the orchestrator with the session's user and the stage times.
    entries = await bus.read(bus.keys.turns, "0", block_ms=3000)
    turns = [e.message for e in entries]
    assert len(turns) == 1 + len(halves) and isinstance(turns[-1], TurnRequest)
    turn = turns[-1]
    assert (turn.turn_id, turn.text, turn.user, turn.source) == (final.turn_id, final.text, "alice", "voice")
    assert turn.ts["speech_end"] <= turn.ts["eot"] <= turn.ts["transcript"] + 1.0
    assert (await bus.redis.get(bus.keys.current_turn(session.sid))).decode() == final.turn_id
    assert await bus.redis.get(bus.keys.owner(session.sid, "stt")) == service.instance.encode()
    # The session ends: the worker lets it go.
    await session.close()
    async with asyncio.timeout(5):
        while await bus.redis.exists(bus.keys.owner(session.sid, "stt")):  # noqa: ASYNC110 - polls state set elsewhere
            await asyncio.sleep(0.05)
    assert session.sid not in service.sessions


async def test_a_spoken_turn_starts_its_trace_here(bus: Bus, service: SttService, tmp_path: Path) -> None:
    """With tracing on, the turn's first span covers speech end to turn queued, and the turn carries it on."""
    path = tmp_path / "spans.jsonl"
    tracing.setup("stt", BusSettings(trace_file=str(path)))
    try:
        session = FakeGatewaySession(bus)
        await session.open()
        await session.stream(np.concatenate([silence(0.5), say("What time is it?"), silence(0.8)]))
        final = await session.wait_for(is_final, within=20)
        turns = [e.message for e in await bus.read(bus.keys.turns, "0", block_ms=1000)]

        async def written() -> bool:
            return any(s["name"] == "stt.transcription" for s in tracing.read_spans(path))

        await eventually(written, within=10)
    finally:
        tracing.shutdown()
    turn = next(t for t in turns if isinstance(t, TurnRequest) and t.turn_id == final.turn_id)
    [span] = [s for s in tracing.read_spans(path) if s["name"] == "stt.transcription"]
    assert turn.traceparent is not None and turn.traceparent.startswith(f"00-{span['trace_id']}-{span['span_id']}-")
    assert span["parent_id"] is None
    assert span["attributes"][tracing.SESSION] == session.sid and span["attributes"][tracing.TURN] == final.turn_id
    assert span["start"] == pytest.approx(turn.ts["speech_end"], abs=0.001) and span["end"] >= turn.ts["transcript"]


async def test_wake_word_gates_and_follow_up_window_keeps_listening(bus: Bus, service: SttService) -> None:
    session = FakeGatewaySession(bus, wake_word="hey_jarvis")
    await session.open()
    await session.stream(np.concatenate([silence(0.3), say("What time is it?"), silence(0.8)]))
    await session.stream(np.concatenate([say("Hey Jarvis, what time is it?"), silence(0.8)]))
    final = await session.wait_for(is_final, within=20)
    assert normalize_text(final.text) == "what time is it"
    wakes = session.of_type("wake")
    assert len(wakes) == 1 and wakes[0].word == "hey_jarvis"
    assert len(session.of_type("speech_started")) == 1  # the first question was not heard
    # Within the follow-up window, no wake word is needed.
    await session.stream(np.concatenate([say("And tomorrow?"), silence(0.8)]))
    second = await session.wait_for(lambda m: is_final(m) and m is not final, within=20)
    assert "tomorrow" in second.text.lower()
    # Configure switches to always listening... and back to a wake word.
    await session.send(Configure(wake_word="alexa"))
    await session.stream(np.concatenate([silence(0.5), say("Hey Jarvis, stop."), silence(0.8)]))
    await session.drain(1.5)
    assert len(session.of_type("transcript_final")) == 2  # alexa is needed now
    await session.send(Configure(listen_always=True))
    await session.stream(np.concatenate([say("Good night."), silence(0.8)]))
    third = await session.wait_for(lambda m: is_final(m) and "night" in m.text.lower(), within=20)
    assert third is not None


async def test_own_voice_does_not_barge_in_but_the_user_does(bus: Bus, service: SttService) -> None:
    session = FakeGatewaySession(bus)
    await session.open()
    await bus.redis.set(bus.keys.current_turn(session.sid), "turn-1")
    reply = say(
        "Sure. The forecast for tomorrow is sunny with a high of twenty two degrees, "
        "and a light breeze from the west in the afternoon."
    )
    echo = (reply * 0.3).astype(np.int16)  # the speaker's sound at the microphone, quieter
    await session.stream(silence(0.5))
    await session.send(PlaybackStarted())
    await session.stream(echo[: echo.size // 2])
    await session.send(PlaybackFinished())  # a pause between sentences: echo tail
    await session.stream(silence(0.2))
    await session.send(PlaybackStarted())
    await session.stream(echo[echo.size // 2 :])
    await session.send(PlaybackFinished())
    await session.stream(silence(1.0))
    await session.drain(2.0)
    assert not await bus.is_cancelled(session.sid, "turn-1")
    assert session.of_type("speech_started") == [] and session.of_type("transcript_final") == []

    # Now the user talks over the reply.
    await session.send(PlaybackStarted())
    user = say("Stop, that's enough.")
    mixed = echo.astype(np.int32)
    start = 16000  # one second into the reply
    mixed[start : start + user.size] += user
    await session.stream(np.clip(mixed, -32768, 32767).astype(np.int16))
    await session.send(PlaybackFinished())
    await session.stream(silence(1.0))
    await until_cancelled(bus, session.sid, "turn-1")
    started = await session.wait_for(lambda m: m.type == "speech_started", within=5)
    # The barge-in starts where the user did (echo audio sent before it: 0.5 s + reply + 1.2 s).
    user_ms = (0.5 + 0.2 + 1.0) * 1000 + echo.size / 16 + 1000
    assert abs(started.audio_ms - user_ms) < 400, (started.audio_ms, user_ms)


async def test_a_sentence_with_a_pause_makes_one_turn_with_every_word(bus: Bus, service: SttService) -> None:
    """smart-turn calls "And so my fellow Americans," complete; the speaker goes on 500 ms later."""
    session = FakeGatewaySession(bus)
    await session.open()
    first, second = "And so my fellow Americans,", "ask not what your country can do for you."
    speech = say(f"{first} {second}")
    cut = longest_pause(speech)
    await session.stream(
        np.concatenate([silence(0.5), speech[:cut], silence(0.5), speech[cut:], silence(1.0)]), realtime=True
    )
    final = await session.wait_for(lambda m: is_final(m) and "country" in m.text.lower(), within=20)
    assert word_errors(final.text, f"{first} {second}") <= 1, final.text
    await session.drain(1.0)
    # A final of the first half alone may have gone out before the speaker went on: its turn is cancelled.
    turns = [e.message for e in await bus.read(bus.keys.turns, "0", block_ms=1000)]
    assert isinstance(turns[-1], TurnRequest) and turns[-1].turn_id == final.turn_id
    for turn in turns[:-1]:
        assert await bus.is_cancelled(session.sid, turn.turn_id), turn.text
    if len(turns) > 1:  # the last transcript holds that turn's words: the orchestrator must not add them again
        assert turns[-1].continues == turns[-2].turn_id


async def test_going_on_before_the_reply_is_heard_cancels_the_turn_as_unheard(bus: Bus, service: SttService) -> None:
    """The turn ended at the pause; the person goes on later, no reply heard yet: the orchestrator merges the two."""
    session = FakeGatewaySession(bus)
    await session.open()
    await session.stream(np.concatenate([silence(0.5), say("Okay, well I think we're ready to begin,"), silence(1.5)]))
    first = await session.wait_for(lambda m: is_final(m) and "begin" in m.text.lower(), within=30)
    await session.stream(np.concatenate([say("right? Shall we start with the budget?"), silence(1.5)]))
    second = await session.wait_for(lambda m: is_final(m) and "budget" in m.text.lower(), within=30)
    assert await bus.cancel_reason(session.sid, first.turn_id) == BARGE_IN_UNHEARD
    turns = [e.message for e in await bus.read(bus.keys.turns, "0", block_ms=1000)]
    last = next(t for t in turns if isinstance(t, TurnRequest) and t.turn_id == second.turn_id)
    assert last.continues == ""  # a turn of its own words: the orchestrator puts the first part in front


def echo_of(reply: np.ndarray, rate: int, gain_db: float, delay_ms: float) -> np.ndarray:
    """The reply as the microphone hears it from the speaker: 16 kHz, quieter, late."""
    import soxr

    at_bus = soxr.resample(reply, rate, 16000).astype(np.float32) * 10 ** (gain_db / 20)
    return np.concatenate([np.zeros(int(delay_ms * 16), dtype=np.float32), at_bus])


async def test_echo_cancelled_reply_never_barges_in_but_a_person_over_it_does(
    bus: Bus, service: SttService
) -> None:
    """Reply audio on the out stream is the reference: its echo (-10 dB, 60 ms late) is removed, the person stays."""
    session = FakeGatewaySession(bus)
    await session.open()
    await bus.redis.set(bus.keys.current_turn(session.sid), "turn-1")
    rate = 22050  # the client's output rate: the reference is resampled
    reply = say(
        "Sure. The forecast for tomorrow is sunny with a high of twenty two degrees, "
        "and a light breeze from the west in the afternoon.",
        rate,
    )
    echo = echo_of(reply, rate, -10, 60)
    await session.reply_audio(reply, rate, "turn-1")
    await session.stream(silence(0.5))
    await session.send(PlaybackStarted())
    await session.stream(echo.astype(np.int16))
    await session.send(PlaybackFinished())
    await session.stream(silence(1.0))
    await session.drain(2.0)
    assert not await bus.is_cancelled(session.sid, "turn-1")
    assert session.of_type("speech_started") == [] and session.of_type("transcript_final") == []

    # The next reply; the person talks over it (a different sentence, spoken slower).
    await bus.redis.set(bus.keys.current_turn(session.sid), "turn-2")
    await session.reply_audio(reply, rate, "turn-2")
    await session.send(PlaybackStarted())
    said = "Stop, what about the weekend?"
    # As loud as the echo (a person as far from the microphone as the speaker): the echo guard's
    # level test alone (6 dB above the echo) would not let them through.
    person = say(said, length_scale=1.2) * 10 ** (-10 / 20)
    mixed = echo.copy()
    start = 16000  # one second into the reply
    mixed[start : start + person.size] += person
    await session.stream(np.clip(mixed, -32768, 32767).astype(np.int16))
    await session.send(PlaybackFinished())
    await session.stream(silence(1.0))
    await until_cancelled(bus, session.sid, "turn-2")
    final = await session.wait_for(is_final, within=20)
    # Their sentence is the next turn, first word included (Whisper tiny.en may slur one word in the middle).
    words = normalize_text(final.text).split()
    assert words[0] == "stop" and "weekend" in words and word_errors(final.text, said) <= 2, final.text
