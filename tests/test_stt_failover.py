"""Two real worker processes share sessions; when the owner is killed mid-utterance, the other replays it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from fleet import Proc, wait_for_log
from speech import say, silence
from stt_client import FakeGatewaySession

from voicefleet.bus import Bus
from voicefleet.codec import decode
from voicefleet.messages import Error, SpeechStarted, TranscriptFinal, TurnRequest

pytestmark = [pytest.mark.models, pytest.mark.fleet]


async def owner_pid(bus: Bus, sid: str) -> int:
    """The pid of the worker process holding the session's lease (from its health key)."""
    owner = await bus.redis.get(bus.keys.owner(sid, "stt"))
    assert owner is not None
    status = json.loads(await bus.redis.get(bus.keys.health("stt", owner.decode())))
    return int(status["pid"])


@pytest.fixture
async def two_workers(fleet_env: dict[str, str], tmp_path: Path) -> AsyncIterator[None]:
    env = dict(fleet_env, VF_STT_LEASE_TTL_MS="2000", VF_STT_SCAN_INTERVAL_S="0.5", VF_STT_PARTIAL_INTERVAL_MS="0")
    workers = [Proc(["-m", "vad_stt_worker"], env, tmp_path / f"stt{i}.log") for i in range(2)]
    try:
        for proc in workers:
            await asyncio.to_thread(wait_for_log, proc, "Ready: stt", 120)
        yield
    finally:
        for proc in workers:
            proc.stop()


async def kill_owner_mid_utterance(bus: Bus, session: FakeGatewaySession, audio: np.ndarray) -> int:
    """Stream ``audio`` live; once its speech has started, SIGKILL the session's owner. Its pid."""
    started = len(session.of_type("speech_started"))
    speaking = asyncio.create_task(session.stream(audio, realtime=True))
    await session.wait_for(
        lambda m: isinstance(m, SpeechStarted) and len(session.of_type("speech_started")) > started, within=15
    )
    victim = await owner_pid(bus, session.sid)
    assert not speaking.done()  # the kill lands mid-speech
    os.kill(victim, signal.SIGKILL)
    await speaking
    return victim


async def turns_of(bus: Bus, sid: str) -> list[TurnRequest]:
    turns = [decode(fields) for _, fields in await bus.redis.xrange(bus.keys.turns)]
    return [t for t in turns if isinstance(t, TurnRequest) and t.session_id == sid]


@pytest.mark.usefixtures("two_workers")
async def test_an_utterance_survives_its_worker_being_killed(bus: Bus) -> None:
    session = FakeGatewaySession(bus, user="bob")
    await session.open()
    # 1.2 s of silence: smart-turn calls this command unfinished, so the turn ends after 900 ms, not 200.
    await session.stream(np.concatenate([silence(0.4), say("Switch off the hallway light."), silence(1.2)]))
    first = await session.wait_for(lambda m: isinstance(m, TranscriptFinal), within=30)
    assert "hallway" in first.text.lower()

    victim = await kill_owner_mid_utterance(
        bus, session, np.concatenate([silence(0.3), say("Are you still there?"), silence(1.2)])
    )
    # The new owner replays the audio since the utterance began: it becomes a turn as if nothing happened.
    replayed = await session.wait_for(lambda m: isinstance(m, TranscriptFinal) and m is not first, within=30)
    assert "still there" in replayed.text.lower()
    survivor = await owner_pid(bus, session.sid)
    assert survivor != victim
    # ...and the session goes on with the other worker.
    await session.stream(np.concatenate([silence(0.3), say("Open the front door, please."), silence(1.2)]))
    second = await session.wait_for(lambda m: isinstance(m, TranscriptFinal) and m not in (first, replayed), within=30)
    assert "front door" in second.text.lower()
    assert len({first.turn_id, replayed.turn_id, second.turn_id}) == 3
    await session.drain(1.0)
    # Nothing was lost, so the client is not told; the turn handed on before the kill is not replayed.
    assert not [m for m in session.events if isinstance(m, Error)]
    assert len(session.of_type("transcript_final")) == 3
    assert len(await turns_of(bus, session.sid)) == 3
    # Position in the session's audio carries over across owners.
    stops = session.of_type("speech_stopped")
    assert stops[-1].audio_ms > stops[0].audio_ms + 2000
    # The replayed utterance starts where the dead owner heard it start (its event is sent again).
    starts = [m.audio_ms for m in session.of_type("speech_started")]
    assert starts[2] == pytest.approx(starts[1], abs=100)


@pytest.mark.usefixtures("two_workers")
async def test_a_woken_session_needs_no_wake_word_after_a_takeover(bus: Bus) -> None:
    session = FakeGatewaySession(bus, wake_word="hey_jarvis")
    await session.open()
    await session.stream(np.concatenate([silence(0.3), say("Hey Jarvis, what time is it?"), silence(1.2)]))
    first = await session.wait_for(lambda m: isinstance(m, TranscriptFinal), within=30)
    assert "time" in first.text.lower()
    # Within the follow-up window: no wake word needed, also not by the worker that takes over.
    await kill_owner_mid_utterance(bus, session, np.concatenate([silence(0.3), say("And tomorrow?"), silence(1.2)]))
    replayed = await session.wait_for(lambda m: isinstance(m, TranscriptFinal) and m is not first, within=30)
    assert "tomorrow" in replayed.text.lower()
    await session.drain(0.5)
    assert not [m for m in session.events if isinstance(m, Error)]
    assert len(session.of_type("wake")) == 1
    assert len(await turns_of(bus, session.sid)) == 2
