"""Two real worker processes share sessions; when the owner is killed, the other takes over."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from fleet import Proc, wait_for_log
from speech import say, silence
from stt_client import FakeGatewaySession

from voicefleet.bus import Bus
from voicefleet.messages import Error, TranscriptFinal

pytestmark = [pytest.mark.models, pytest.mark.fleet]


async def owner_pid(bus: Bus, sid: str) -> int:
    """The pid of the worker process holding the session's lease (from its health key)."""
    owner = await bus.redis.get(bus.keys.owner(sid, "stt"))
    assert owner is not None
    status = json.loads(await bus.redis.get(bus.keys.health("stt", owner.decode())))
    return int(status["pid"])


async def test_session_survives_its_worker_being_killed(bus: Bus, fleet_env: dict[str, str], tmp_path: Path) -> None:
    env = dict(fleet_env, VF_STT_LEASE_TTL_MS="2000", VF_STT_SCAN_INTERVAL_S="0.5", VF_STT_PARTIAL_INTERVAL_MS="0")
    workers = [Proc(["-m", "vad_stt_worker"], env, tmp_path / f"stt{i}.log") for i in range(2)]
    try:
        for proc in workers:
            await asyncio.to_thread(wait_for_log, proc, "Ready: stt", 120)
        session = FakeGatewaySession(bus, user="bob")
        await session.open()
        # 1.2 s of silence: smart-turn calls this command unfinished, so the turn ends after 900 ms, not 200.
        await session.stream(np.concatenate([silence(0.4), say("Switch off the hallway light."), silence(1.2)]))
        first = await session.wait_for(lambda m: isinstance(m, TranscriptFinal), within=30)
        assert "hallway" in first.text.lower()

        victim = await owner_pid(bus, session.sid)
        os.kill(victim, signal.SIGKILL)
        # The user keeps talking while nobody listens: that utterance may be lost...
        await session.stream(np.concatenate([say("Are you still"), silence(0.3)]))
        lost = await session.wait_for(lambda m: isinstance(m, Error), within=15)
        assert lost.code == "stt_worker_lost"
        survivor = await owner_pid(bus, session.sid)
        assert survivor != victim
        # ...but the session goes on with the other worker.
        await session.stream(np.concatenate([silence(0.3), say("Open the front door, please."), silence(1.2)]))
        second = await session.wait_for(lambda m: isinstance(m, TranscriptFinal) and m is not first, within=30)
        assert "front door" in second.text.lower()
        assert second.turn_id != first.turn_id
        # Position in the session's audio carries over across owners.
        stops = session.of_type("speech_stopped")
        assert stops[-1].audio_ms > stops[0].audio_ms + 2000
    finally:
        for proc in workers:
            proc.stop()
