"""Helpers for the client tests: a gateway process that can be restarted, and a scripted fleet.

:class:`ScriptedFleet` stands in for the STT, LLM and TTS workers when a test
is about the *client*: it reads the session's real audio stream on the real
Redis, finds the end of speech by energy like a VAD would, and answers on the
bus with the same messages the workers send (transcript, reply text, reply
audio framed by the real gateway). The gateway, Redis and WebSocket are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import redis
from fleet import Proc, child_env, mint_token

from voicefleet.audio import BUS_RATE
from voicefleet.bus import Bus
from voicefleet.messages import (
    AudioChunk,
    AudioFrame,
    ReplyDelta,
    ReplyDone,
    SpeechStarted,
    SpeechStopped,
    TranscriptFinal,
    TurnRequest,
    new_id,
)
from voicefleet.sessions import Sessions
from voicefleet.settings import BusSettings

LOUD_RMS = 300.0
END_SILENCE_S = 0.4
TRANSCRIPT = "what time is it"
REPLY = ["It is ", "time for a test."]


class GatewayProc:
    """``python -m gateway serve`` on a fixed port; :meth:`restart` keeps the port."""

    def __init__(self, env: dict[str, str], port: int, log: Path, extra: dict[str, str] | None = None) -> None:
        self.env = child_env(env)
        self.env.update(VF_GATEWAY_REQUIRED_SERVICES="", VF_GATEWAY_IDLE_TIMEOUT_S="60", **(extra or {}))
        self.port, self.log = port, log
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"
        self.secret = self.env["VF_GATEWAY_JWT_SECRET"]
        self.proc: Proc | None = None

    def start(self) -> GatewayProc:
        self.proc = Proc(["-m", "gateway", "serve", "--port", str(self.port)], self.env, self.log)
        # Each start appends to the same log: wait for this start's own "Ready" line.
        before = self.log.read_text(errors="replace").count("Ready: gateway") if self.log.exists() else 0
        deadline = time.monotonic() + 30
        while self.proc.output().count("Ready: gateway") <= before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway not ready in 30 s:\n{self.proc.output()[-3000:]}")
            if self.proc.process.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.proc.output()[-3000:]}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.handle.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def token(self, sub: str = "alice", **overrides: object) -> str:
        return mint_token(self.secret, sub, **overrides)


def tone(seconds: float, rate: int, freq: float = 330.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16).tobytes()


class ScriptedFleet:
    """Answers every session's speech (by energy) and typed text like the real workers would."""

    def __init__(self, bus: Bus, reply_audio_s: float = 0.6) -> None:
        self.bus = bus
        self.keys = bus.keys
        self.reply_audio_s = reply_audio_s
        self.turns: list[str] = []
        self.frames: dict[str, int] = {}  # frames seen per session
        self.loud_frames: dict[str, int] = {}
        self.playback: dict[str, list[str]] = {}  # playback_started/finished seen per session
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._watched: set[str] = set()

    async def __aenter__(self) -> ScriptedFleet:
        await self.bus.ensure_group(self.keys.turns, "llm")
        self._spawn(self._watch_sessions())
        self._spawn(self._answer_text())
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Let the loops finish their current read: cancelling a task in the middle of a
        # blocking Redis read can leave it stuck in redis-py's connection clean-up.
        self._stopping = True
        _, pending = await asyncio.wait(self._tasks, timeout=3)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self._tasks.add(task)

    async def _watch_sessions(self) -> None:
        while not self._stopping:
            for raw in await self.bus.redis.zrange(self.keys.sessions, 0, -1):
                sid = raw.decode()
                if sid not in self._watched:
                    self._watched.add(sid)
                    self._spawn(self._listen(sid))
            await asyncio.sleep(0.05)

    async def _listen(self, sid: str) -> None:
        """A tiny VAD: loud frames start speech, END_SILENCE_S of quiet ends the turn."""
        last: bytes | str = "0"
        speaking = False
        quiet_s = 0.0
        loud_s = 0.0
        while not self._stopping:
            for entry in await self.bus.read(self.keys.audio(sid), last, block_ms=200):
                last = entry.id
                msg = entry.message
                if msg is not None and msg.type in ("playback_started", "playback_finished"):
                    self.playback.setdefault(sid, []).append(msg.type)
                if not isinstance(msg, AudioFrame):
                    continue
                samples = np.frombuffer(msg.audio, dtype=np.int16).astype(np.float64)
                seconds = len(samples) / BUS_RATE
                loud = len(samples) > 0 and float(np.sqrt((samples**2).mean())) > LOUD_RMS
                self.frames[sid] = self.frames.get(sid, 0) + 1
                self.loud_frames[sid] = self.loud_frames.get(sid, 0) + int(loud)
                if loud:
                    loud_s += seconds
                    quiet_s = 0.0
                    if not speaking and loud_s >= 0.1:
                        speaking = True
                        await self.bus.emit(SpeechStarted(session_id=sid))
                elif speaking:
                    quiet_s += seconds
                    if quiet_s >= END_SILENCE_S:
                        speaking, loud_s = False, 0.0
                        speech_end = time.time() - quiet_s
                        await self._answer(sid, new_id(), TRANSCRIPT, {"speech_end": speech_end})
                else:
                    loud_s = 0.0

    async def _answer_text(self) -> None:
        while not self._stopping:
            for entry in await self.bus.read_group(self.keys.turns, "llm", "scripted", count=10, block_ms=200):
                await self.bus.ack(self.keys.turns, "llm", entry.id)
                if isinstance(entry.message, TurnRequest):
                    req = entry.message
                    await self._answer(req.session_id, req.turn_id, None, dict(req.ts))

    async def _answer(self, sid: str, turn: str, transcript: str | None, ts: dict[str, float]) -> None:
        self.turns.append(turn)
        record = await Sessions(self.bus).load(sid)
        rate = record.output_sample_rate if record else BUS_RATE
        if transcript is not None:
            await self.bus.emit(SpeechStopped(session_id=sid))
            ts.update(eot=time.time(), transcript=time.time())
            await self.bus.emit(TranscriptFinal(session_id=sid, turn_id=turn, text=transcript, ts=dict(ts)))
        await self.bus.redis.set(self.keys.current_turn(sid), turn, ex=600)
        ts["llm_first_token"] = time.time()
        for piece in REPLY:
            await self.bus.emit(ReplyDelta(session_id=sid, turn_id=turn, text=piece, ts=dict(ts)))
        ts["first_chunk"] = time.time()
        await self.bus.emit(ReplyDone(session_id=sid, turn_id=turn, text="".join(REPLY), chunks=2))
        ts["tts_first_audio"] = time.time()
        half = tone(self.reply_audio_s / 2, rate)
        for seq in range(2):
            await self.bus.emit(AudioChunk(session_id=sid, turn_id=turn, seq=seq, index=0, last=True,
                                           final=seq == 1, sample_rate=rate, audio=half, ts=dict(ts)))


class FleetThread:
    """A :class:`ScriptedFleet` on its own event loop in a thread, for synchronous (browser) tests."""

    def __init__(self, settings: BusSettings, **kwargs: float) -> None:
        self.settings, self.kwargs = settings, kwargs
        self.fleet: ScriptedFleet | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        bus = Bus(self.settings)
        try:
            async with ScriptedFleet(bus, **self.kwargs) as fleet:
                self.fleet = fleet
                self._ready.set()
                await self._stop.wait()
        finally:
            await bus.close()

    def call(self, coro_fn, *args):  # type: ignore[no-untyped-def]
        """Run ``coro_fn(bus, *args)`` on the fleet's loop and return its result."""
        assert self._loop is not None and self.fleet is not None
        return asyncio.run_coroutine_threadsafe(coro_fn(self.fleet.bus, *args), self._loop).result(10)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        """The fleet's records (turns, loud_frames, playback) read through."""
        return getattr(self.__dict__["fleet"], name)

    def __enter__(self) -> FleetThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the scripted fleet did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@contextlib.contextmanager
def private_prefix(redis_url: str) -> Iterator[BusSettings]:
    """Bus settings under a key prefix of their own, deleted afterwards (for module-scoped fixtures)."""
    prefix = f"vftest-{new_id()[:8]}"
    yield BusSettings(redis_url=redis_url, key_prefix=prefix, health_ttl_s=2.0)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def gateway_env(settings: BusSettings) -> dict[str, str]:
    """What a gateway process needs to serve under ``settings``' prefix."""
    return dict(os.environ, VF_REDIS_URL=settings.redis_url, VF_KEY_PREFIX=settings.key_prefix,
                VF_HEALTH_TTL_S="2", PYTHONUNBUFFERED="1",
                VF_GATEWAY_JWT_SECRET=f"test-secret-{settings.key_prefix}-0123456789abcdef0123456789")
