"""Helpers shared by the TTS tests: voices loaded once, audio chunks collected."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import numpy as np
from redis.exceptions import ResponseError

from tts_worker.settings import TtsSettings
from tts_worker.voices import VoiceCatalog
from tts_worker.worker import TtsService, load_voices
from voicefleet.bus import Bus
from voicefleet.messages import AudioChunk, Message
from voicefleet.settings import BusSettings


@functools.lru_cache(maxsize=1)
def catalog() -> VoiceCatalog:
    """The packaged Piper voice alone, loaded and warmed once for the whole test run.

    The worker's behaviour is tested with Piper (the slower engine, whose long sentences a cancel
    can cut); hibari, the default English voice, has its own tests in test_tts_hibari.py.
    """
    return load_voices(TtsSettings(default_voice="", hibari=False))


@asynccontextmanager
async def running_worker(
    bus_settings: BusSettings, voices: VoiceCatalog | None = None, **settings: object
) -> AsyncIterator[TtsService]:
    """A TTS worker running in this event loop (with the packaged voice by default), ready when entered."""
    tts = TtsSettings(bus=bus_settings, **settings)  # type: ignore[arg-type]
    service = TtsService(tts, catalog=voices or catalog())
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(20):
            while not service.ready or not await _connected(service):  # noqa: ASYNC110 - polling Redis state
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # the group read is under way by now
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, 10)


async def _connected(service: TtsService) -> bool:
    """Whether the worker hears cancels and has set up its consumer group.

    Stopping a worker while its Redis connections are still being set up can
    hang (redis-py 8 loses a cancellation that lands during the connection
    handshake), so tests stop workers only once their loops are connected.
    """
    bus, keys = service.bus, service.keys
    subscribed = await bus.redis.pubsub_numsub(keys.cancel_channel)
    if not subscribed or subscribed[0][1] < 1:
        return False
    try:
        groups = await bus.redis.xinfo_groups(keys.speak)
    except ResponseError:  # no stream yet
        return False
    return any(g["name"] == b"tts" for g in groups)


Done = Callable[[list[Message]], bool]


async def read_until(bus: Bus, session_id: str, done: Done, wait_s: float = 20.0) -> list[Message]:
    """Everything on a session's out stream until ``done(messages)`` holds."""
    seen: list[Message] = []
    last: bytes | str = "0"
    async with asyncio.timeout(wait_s):
        while not done(seen):
            for entry in await bus.read(bus.keys.out(session_id), last, block_ms=200):
                last = entry.id
                if entry.message is not None:
                    seen.append(entry.message)
    return seen


def chunks_of(messages: list[Message]) -> list[AudioChunk]:
    return [m for m in messages if isinstance(m, AudioChunk)]


def audio_of(chunks: list[AudioChunk]) -> np.ndarray:
    ordered = sorted(chunks, key=lambda c: (c.seq, c.index))
    return np.frombuffer(b"".join(c.audio for c in ordered), dtype=np.int16)


def all_sentences_done(count: int) -> Done:
    def done(messages: list[Message]) -> bool:
        return len({c.seq for c in chunks_of(messages) if c.last}) >= count

    return done
