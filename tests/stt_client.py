"""For STT tests: play the gateway's part of a session directly on the bus.

Writes the session hash, the sessions sorted set and the announcement, streams
audio frames and in-band control onto the session's audio stream, and reads
what the worker sends back to the client from the out stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from voicefleet.audio import BUS_RATE
from voicefleet.bus import AUDIO_MAXLEN, Bus
from voicefleet.messages import AudioChunk, AudioFrame, Message, SessionEnded, new_id
from voicefleet.sessions import SessionRecord, Sessions

FRAME = 640  # 40 ms at 16 kHz, a typical client frame


class FakeGatewaySession:
    """One session as the gateway would hold it."""

    def __init__(self, bus: Bus, user: str = "alice", wake_word: str = "", session_id: str = "") -> None:
        self.bus = bus
        self.sid = session_id or new_id()
        self.user = user
        self.wake_word = wake_word
        self.seq = 0
        self.out_id: bytes | str = "0"
        self.events: list[Message] = []

    async def open(self) -> None:
        sessions = Sessions(self.bus)
        await sessions.save(self.sid, SessionRecord(user=self.user, wake_word=self.wake_word, created=time.time()))
        await sessions.announce(self.sid)

    async def send(self, msg: Message) -> None:
        msg.session_id = self.sid
        await self.bus.add(self.bus.keys.audio(self.sid), msg, maxlen=AUDIO_MAXLEN)

    async def stream(self, audio: np.ndarray, realtime: bool = False) -> None:
        """Send ``audio`` as 40 ms frames, paced like a live microphone when ``realtime``."""
        started = time.monotonic()
        for offset in range(0, audio.size, FRAME):
            self.seq += 1
            await self.send(AudioFrame(seq=self.seq, audio=audio[offset : offset + FRAME].astype("<i2").tobytes()))
            if realtime:
                ahead = started + (offset + FRAME) / BUS_RATE - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)

    async def reply_audio(self, audio: np.ndarray, rate: int, turn_id: str, seq: int = 1) -> None:
        """Reply audio for the client, as the TTS worker puts it on the out stream (100 ms pieces)."""
        step = rate // 10
        for index, offset in enumerate(range(0, audio.size, step)):
            last = offset + step >= audio.size
            await self.bus.emit(AudioChunk(
                session_id=self.sid, turn_id=turn_id, seq=seq, index=index, last=last, final=last,
                sample_rate=rate, audio=audio[offset : offset + step].astype("<i2").tobytes(),
            ))

    async def close(self) -> None:
        await self.bus.redis.zrem(self.bus.keys.sessions, self.sid)
        await self.send(SessionEnded(reason="test over"))

    async def wait_for(self, match: Callable[[Message], bool], within: float = 30.0) -> Message:
        """The first event (new or already read) that matches; keeps every event in ``events``."""
        for msg in self.events:
            if match(msg):
                return msg
        async with asyncio.timeout(within):
            while True:
                for entry in await self.bus.read(self.bus.keys.out(self.sid), self.out_id, block_ms=200):
                    self.out_id = entry.id
                    if entry.message is not None:
                        self.events.append(entry.message)
                        if match(entry.message):
                            return entry.message

    async def drain(self, seconds: float = 0.3) -> list[Message]:
        """Every event that arrives within ``seconds`` from now."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for entry in await self.bus.read(self.bus.keys.out(self.sid), self.out_id, block_ms=int(left * 1000) + 1):
                self.out_id = entry.id
                if entry.message is not None:
                    self.events.append(entry.message)
        return self.events

    def of_type(self, kind: str) -> list[Message]:
        return [m for m in self.events if m.type == kind]
