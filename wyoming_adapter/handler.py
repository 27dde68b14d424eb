"""One Wyoming connection: ``describe``, and the events of its server's kind, routed to the fleet over Redis.

* ``asr``: ``transcribe``? ``audio-start`` ``audio-chunk``* ``audio-stop`` -> ``transcript``. The recording
  goes to a STT worker as one :class:`TranscribeRequest` (as ``/v1/audio/transcriptions`` does).
* ``tts``: ``synthesize`` -> ``audio-start`` ``audio-chunk``* ``audio-stop``. A :class:`TtsRequest` on the
  ``speak`` stream (as ``/v1/tts``), its audio passed on as the TTS worker makes it.
* ``wake``: ``detect`` ``audio-start`` ``audio-chunk``* ``audio-stop`` -> ``detection``* or ``not-detected``.
  The audio goes into a wake-only session (:attr:`SessionRecord.wake_only`): a STT worker claims it as any
  session and runs openWakeWord on it, and its ``wake`` events come back as detections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection, NotDetected

from voicefleet import rpc
from voicefleet.audio import BUS_RATE, SAMPLE_WIDTH
from voicefleet.bus import AUDIO_MAXLEN, REDIS_DOWN, Bus
from voicefleet.messages import AudioFrame, TranscribeRequest, TranscriptDone, TtsRequest, Wake, new_id
from voicefleet.sessions import SessionRecord, Sessions

from .info import Kind, info
from .settings import WyomingSettings

log = logging.getLogger(__name__)

#: Wake sessions are refreshed this often while audio flows (the STT workers leave stale sessions).
KEEPALIVE_S = 10.0


class FleetHandler(AsyncEventHandler):
    """Serves one client of one server kind (``asr``, ``tts`` or ``wake``)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kind: Kind, bus: Bus,
        settings: WyomingSettings, instance: str,
    ) -> None:
        super().__init__(reader, writer)
        self.kind, self.bus, self.settings, self.instance = kind, bus, settings, instance
        self.converter = AudioChunkConverter(rate=BUS_RATE, width=SAMPLE_WIDTH, channels=1)
        self.language: str | None = None
        self.audio = bytearray()
        self.wake: _WakeStream | None = None
        self.wanted_words: list[str] | None = None

    async def handle_event(self, event: Event) -> bool:
        try:
            return await self._handle(event)
        except rpc.RequestFailed as exc:
            await self.write_event(Error(text=exc.message, code=exc.code).event())
        except REDIS_DOWN:
            down = Error(text="The fleet's message bus is unreachable.", code="bus_unavailable")
            await self.write_event(down.event())
        return True

    async def _handle(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(info(self.kind, await self.bus.health()).event())
        elif self.kind == "asr":
            await self._asr(event)
        elif self.kind == "tts" and Synthesize.is_type(event.type):
            await self._synthesize(Synthesize.from_event(event))
        elif self.kind == "wake":
            await self._wake(event)
        return True

    async def disconnect(self) -> None:
        if self.wake is not None:
            await self.wake.close(wait=False)

    # ------------------------------------------------------------------------------------- asr
    async def _asr(self, event: Event) -> None:
        if Transcribe.is_type(event.type):
            self.language = Transcribe.from_event(event).language
        elif AudioStart.is_type(event.type):
            self.audio = bytearray()
        elif AudioChunk.is_type(event.type):
            if len(self.audio) < self.settings.max_audio_s * BUS_RATE * SAMPLE_WIDTH:
                self.audio += self.converter.convert(AudioChunk.from_event(event)).audio
        elif AudioStop.is_type(event.type):
            audio, self.audio = bytes(self.audio), bytearray()
            if not audio:
                await self.write_event(Transcript(text="", language=self.language).event())
                return
            if not await rpc.ready_workers(self.bus, "stt"):
                raise rpc.RequestFailed("stt_unavailable", "No speech-to-text worker is running right now.")
            request = TranscribeRequest(audio=audio, language=self.language).stamp("wyoming_received")
            text, language = "", self.language
            async for answer in rpc.transcribe(self.bus, request, self.settings.transcribe_timeout_s):
                if isinstance(answer, TranscriptDone):
                    text, language = answer.text, answer.language or language
            log.info("transcript: %r", text)
            await self.write_event(Transcript(text=text, language=language).event())

    # ------------------------------------------------------------------------------------- tts
    async def _synthesize(self, synthesize: Synthesize) -> None:
        if not await rpc.ready_workers(self.bus, "tts"):
            raise rpc.RequestFailed("tts_unavailable", "No text-to-speech worker is running right now.")
        voice = synthesize.voice.name if synthesize.voice is not None else None
        # Sample rate 0: the voice's own rate (Wyoming's audio-start says which).
        request = TtsRequest(text=synthesize.text, voice=voice or None, sample_rate=0).stamp("wyoming_received")
        started, at = False, 0
        async for chunk in rpc.synthesize(self.bus, request, self.settings.tts_timeout_s):
            if not started:
                await self.write_event(AudioStart(rate=chunk.sample_rate, width=SAMPLE_WIDTH, channels=1,
                                                  timestamp=0).event())
                started = True
            if chunk.audio:
                piece = AudioChunk(rate=chunk.sample_rate, width=SAMPLE_WIDTH, channels=1, audio=chunk.audio,
                                   timestamp=at)
                await self.write_event(piece.event())
                at += piece.milliseconds
        await self.write_event(AudioStop(timestamp=at).event())

    # ------------------------------------------------------------------------------------- wake
    async def _wake(self, event: Event) -> None:
        if Detect.is_type(event.type):
            self.wanted_words = Detect.from_event(event).names
        elif AudioStart.is_type(event.type):
            if self.wake is not None:
                await self.wake.close(wait=False)
            word = await self._pick_word()
            self.wake = _WakeStream(self, word)
            await self.wake.open()
        elif AudioChunk.is_type(event.type):
            if self.wake is None:  # audio without audio-start: start one
                self.wake = _WakeStream(self, await self._pick_word())
                await self.wake.open()
            await self.wake.feed(self.converter.convert(AudioChunk.from_event(event)).audio)
        elif AudioStop.is_type(event.type) and self.wake is not None:
            wake, self.wake = self.wake, None
            if not await wake.close(wait=True):
                await self.write_event(NotDetected().event())

    async def _pick_word(self) -> str:
        """The first asked-for wake word the fleet has (any it has when none is asked)."""
        offered = sorted({w for s in await rpc.ready_workers(self.bus, "stt") for w in s.get("wake_words", [])})
        if not offered:
            raise rpc.RequestFailed("stt_unavailable", "No wake word worker is running right now.")
        for name in self.wanted_words or []:
            normalized = name.strip().lower().replace(" ", "_").replace("-", "_")
            if normalized in offered:
                return normalized
        if self.wanted_words:
            raise rpc.RequestFailed("unknown_wake_word",
                                    f"None of {self.wanted_words} is offered; the fleet has {', '.join(offered)}.")
        return offered[0]


class _WakeStream:
    """One audio stream of a wake client: a wake-only session, its audio in, its detections out."""

    def __init__(self, handler: FleetHandler, word: str) -> None:
        self.handler, self.word = handler, word
        self.bus = handler.bus
        self.sessions = Sessions(self.bus)
        self.session_id = new_id()
        self.seq = 0
        self.detected = 0
        self.samples = 0
        self._tasks: list[asyncio.Task[Any]] = []

    async def open(self) -> None:
        record = SessionRecord(user=self.handler.settings.user, wake_word=self.word, wake_only=True,
                               echo_cancelled=True, created=time.time(),
                               connection=f"{self.handler.instance}/{self.session_id}")
        await self.sessions.open(self.session_id, record)
        self.record = record
        self._tasks = [asyncio.create_task(self._detections(), name="wake-detections"),
                       asyncio.create_task(self._keepalive(), name="wake-keepalive")]
        log.info("wake stream for %s", self.word, extra={"session": self.session_id})

    async def feed(self, pcm: bytes) -> None:
        self.seq += 1
        self.samples += len(pcm) // SAMPLE_WIDTH
        frame = AudioFrame(session_id=self.session_id, seq=self.seq, audio=pcm)
        await self.bus.add(self.bus.keys.audio(self.session_id), frame, maxlen=AUDIO_MAXLEN)

    async def _detections(self) -> None:
        last: bytes | str = "0-0"
        stream = self.bus.keys.out(self.session_id)
        while True:
            for entry in await self.bus.read(stream, last, block_ms=1000):
                last = entry.id
                if isinstance(entry.message, Wake):
                    self.detected += 1
                    log.info("detected %s (%.2f)", entry.message.word, entry.message.score,
                             extra={"session": self.session_id})
                    await self.handler.write_event(Detection(name=entry.message.word).event())

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            with contextlib.suppress(*REDIS_DOWN):
                await self.sessions.save(self.session_id, self.record)

    async def close(self, wait: bool) -> bool:
        """End the stream; with ``wait``, first let the STT worker hear all of it. True when it detected."""
        owner = self.bus.keys.owner(self.session_id, "stt")  # the STT worker's lease on the session
        deadline = time.monotonic() + self.handler.settings.wake_settle_s
        try:
            if wait:
                # The worker reads up to the end mark, analysing every frame before it, then lets go.
                await self.sessions.end_audio(self.session_id, "audio_stop")
                while not await self.bus.redis.exists(owner) and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # a key in Redis: no event to await
                while await self.bus.redis.exists(owner) and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.1)  # the last detection's read
            await self.sessions.close(self.session_id, self.handler.settings.user, "audio_stop")
        except REDIS_DOWN:
            log.warning("could not close the wake session", extra={"session": self.session_id})
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.detected > 0
