"""Headless turns: stream recorded speech (or send text), collect the reply and its timings.

This is what scripts, tests and benchmarks use::

    async with HeadlessClient(url, token) as client:
        result = await client.say(samples)          # int16 mono at 16 kHz
        result = await client.ask("what time is it")

or :func:`run_turn` for a single turn on a fresh session.

Voice-to-voice latency is measured the way a person would feel it: from the
acoustic end of the speech in the input (found in the recording itself by
energy, see :func:`audio_client.wav.speech_end`), taken at the moment the
frame holding that sample was sent, to the first byte of reply audio
received. The server's own stage stamps (``audio_start.ts``) give the
breakdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voicefleet.audio import BUS_RATE
from voicefleet.messages import (
    AudioEnd,
    AudioStart,
    Error,
    Interrupted,
    Message,
    Notice,
    PlaybackFinished,
    PlaybackStarted,
    ReplyDelta,
    ReplyDone,
    SpeechStarted,
    SpeechStopped,
    TextInput,
    ToolCall,
    ToolResult,
    TranscriptFinal,
    TranscriptPartial,
    Wake,
)

from . import wav
from .protocol import ConnectionLost, GatewaySession, Item, StartOptions

log = logging.getLogger(__name__)

#: Frames per second the fast mode stays under (the gateway allows 100 by default).
FAST_FRAMES_PER_S = 50
#: After ``reply_done`` announced no speech at all, stop waiting for audio after this long.
NO_AUDIO_GRACE_S = 3.0


@dataclass
class TurnResult:
    """Everything one turn produced, as seen by the client."""

    session_id: str = ""
    turn_id: str = ""
    source: str = "voice"  # "voice" or "text"
    transcript: str = ""
    partials: list[str] = field(default_factory=list)
    reply: str = ""
    audio: bytes = b""  # PCM16 mono at ``sample_rate``
    sample_rate: int = BUS_RATE
    #: Where the speech ends in the input audio, in seconds (None for text or silence).
    speech_end_s: float | None = None
    #: First reply audio after the end of the speech in the input (None for text).
    voice_to_voice_ms: float | None = None
    #: First reply audio after the end of the input (speech end, or text sent).
    first_audio_ms: float | None = None
    #: Server stage stamps from ``audio_start``, in ms after the end of the input.
    stages_ms: dict[str, float] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wake_word: str = ""
    interrupted: bool = False
    timed_out: bool = False

    @property
    def audio_s(self) -> float:
        return len(self.audio) / 2 / self.sample_rate if self.sample_rate else 0.0

    @property
    def ok(self) -> bool:
        return not self.timed_out and not self.interrupted and bool(self.reply or self.audio)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary (the audio itself left out)."""
        return {
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "source": self.source,
            "transcript": self.transcript,
            "reply": self.reply,
            "speech_end_s": _round(self.speech_end_s, 3),
            "voice_to_voice_ms": _round(self.voice_to_voice_ms, 1),
            "first_audio_ms": _round(self.first_audio_ms, 1),
            "stages_ms": {k: round(v, 1) for k, v in self.stages_ms.items()},
            "audio_s": round(self.audio_s, 3),
            "sample_rate": self.sample_rate,
            "tools": self.tools,
            "notices": self.notices,
            "errors": self.errors,
            "wake_word": self.wake_word,
            "interrupted": self.interrupted,
            "timed_out": self.timed_out,
            "ok": self.ok,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class _Collector:
    """Folds the server's events for one turn into a :class:`TurnResult`."""

    def __init__(self, result: TurnResult, origin_wall: float | None, past_turns: set[str]) -> None:
        self.result = result
        self.past_turns = past_turns  # finished turns: their late events (a stale 'interrupted') are not ours
        self.origin_wall = origin_wall  # wall time of the end of the input (set later for voice)
        self.origin_mono: float | None = None
        self.segments: list[tuple[int, bytearray]] = []
        self.first_audio_mono: float | None = None
        self.first_audio_wall: float | None = None
        self.stage_ts: dict[str, float] = {}
        self.in_audio = False
        self.reply_done_at: float | None = None
        self.speech_chunks = 0  # speech chunks the reply asked TTS for (reply_done.chunks)
        self.done = False

    def _ours(self, msg: Message) -> bool:
        """Events of another (older) turn are ignored once this turn's id is known."""
        if not msg.turn_id:
            return True
        if msg.turn_id in self.past_turns:
            return False
        if not self.result.turn_id:
            self.result.turn_id = msg.turn_id
            return True
        return msg.turn_id == self.result.turn_id

    def take(self, item: Item) -> None:
        r = self.result
        if isinstance(item, bytes):
            if self.in_audio and item:
                if self.first_audio_mono is None:
                    self.first_audio_mono, self.first_audio_wall = time.monotonic(), time.time()
                self.segments[-1][1].extend(item)
            return
        msg = item
        if isinstance(msg, (Wake, SpeechStarted, SpeechStopped, TranscriptPartial)):
            # Pre-transcript events carry no turn id yet; they belong to whatever turn comes.
            if isinstance(msg, Wake):
                r.wake_word = msg.word
            elif isinstance(msg, TranscriptPartial):
                r.partials.append(msg.text)
            return
        if isinstance(msg, Notice):
            r.notices.append(msg.message)
            return
        if isinstance(msg, Error):
            r.errors.append(f"{msg.code}: {msg.message}")
            if msg.turn_id and self._ours(msg):
                self.done = True
            return
        if not self._ours(msg):
            return
        if isinstance(msg, TranscriptFinal):
            r.transcript = msg.text
        elif isinstance(msg, ReplyDelta):
            r.reply += msg.text
        elif isinstance(msg, ReplyDone):
            r.reply = msg.text or r.reply
            self.reply_done_at = time.monotonic()
            self.speech_chunks = msg.chunks
            if msg.interrupted:
                r.interrupted = True
        elif isinstance(msg, ToolCall):
            r.tools.append({"call_id": msg.call_id, "name": msg.name, "args": msg.args})
        elif isinstance(msg, ToolResult):
            r.tools.append({"call_id": msg.call_id, "name": msg.name, "ok": msg.ok, "text": msg.text})
        elif isinstance(msg, AudioStart):
            self.in_audio = True
            self.segments.append((msg.sample_rate, bytearray()))
            self.stage_ts = dict(msg.ts)
        elif isinstance(msg, AudioEnd):
            self.in_audio = False
            self.done = True
        elif isinstance(msg, Interrupted):
            r.interrupted = True
            self.done = True

    def waiting_for_nothing(self) -> bool:
        """``reply_done`` came long ago and no audio ever started: the turn has no speech.

        A reply that asked for speech (``chunks``) gets its audio however long a
        busy TTS takes (an error or the turn's timeout end the wait instead).
        """
        return (self.reply_done_at is not None and not self.segments and not self.speech_chunks
                and time.monotonic() - self.reply_done_at > NO_AUDIO_GRACE_S)

    def finish(self, sample_rate: int) -> TurnResult:
        r = self.result
        r.sample_rate = sample_rate
        r.audio = b"".join(wav.resample(bytes(pcm), rate, sample_rate) for rate, pcm in self.segments)
        if self.origin_mono is not None and self.first_audio_mono is not None:
            r.first_audio_ms = (self.first_audio_mono - self.origin_mono) * 1000
            if r.source == "voice":
                r.voice_to_voice_ms = r.first_audio_ms
        if self.origin_wall is not None:
            stages = dict(self.stage_ts)
            if self.first_audio_wall is not None:
                stages["client_first_audio"] = self.first_audio_wall
            r.stages_ms = {
                stage: (at - self.origin_wall) * 1000
                for stage, at in sorted(stages.items(), key=lambda kv: kv[1])
            }
        return r


class HeadlessClient:
    """One session used for any number of turns, one at a time."""

    def __init__(self, url: str, token: str, options: StartOptions | None = None, *,
                 frame_ms: int = 40, open_timeout_s: float = 5.0, output_sample_rate: int = 0) -> None:
        self.options = options or StartOptions()
        self.options.sample_rate = BUS_RATE
        self.options.output_sample_rate = output_sample_rate
        self.session = GatewaySession(url, token, self.options, open_timeout_s)
        self.frame_ms = frame_ms
        self._queue: asyncio.Queue[Item | ConnectionLost] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._past_turns: set[str] = set()
        # A virtual speaker: the server hears playback_started/finished as if the reply
        # were played in real time, so a next turn is not mistaken for a barge-in.
        self._speaking = False
        self._speaker_until = 0.0

    @property
    def ready(self) -> Any:
        return self.session.ready

    @property
    def output_rate(self) -> int:
        ready = self.session.ready
        return ready.output_sample_rate if ready and ready.output_sample_rate else BUS_RATE

    async def __aenter__(self) -> HeadlessClient:
        await self.session.open()
        self._reader = asyncio.create_task(self._read(), name="headless-reader")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        with contextlib.suppress(ConnectionLost):
            await self._end_playback(wait=False)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self.session.close()

    async def _read(self) -> None:
        try:
            async for item in self.session.items():
                self._queue.put_nowait(item)
        except ConnectionLost as exc:
            self._queue.put_nowait(exc)

    def _drain(self) -> None:
        """Forget anything left over from an earlier turn."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, ConnectionLost):
                raise item

    # ------------------------------------------------------------------ turns
    async def ask(self, text: str, timeout_s: float = 60.0) -> TurnResult:
        """Send typed text and collect the reply."""
        await self._end_playback(wait=True)
        self._drain()
        result = TurnResult(session_id=self.session.session_id, source="text", transcript=text)
        sent_wall = time.time()
        collector = _Collector(result, sent_wall, self._past_turns)
        collector.origin_mono = time.monotonic()
        await self.session.send(TextInput(text=text))
        await self._collect(collector, timeout_s)
        return self._finish(collector)

    async def say(self, samples: np.ndarray, *, realtime: bool = True, trailing_silence_s: float = 1.5,
                  timeout_s: float = 60.0) -> TurnResult:
        """Stream int16 mono speech at 16 kHz like a microphone would, and collect the reply.

        After the recording and ``trailing_silence_s`` of silence, silence keeps
        flowing in real time (a microphone never stops) until the turn ends.
        """
        await self._end_playback(wait=True)
        self._drain()
        result = TurnResult(session_id=self.session.session_id, source="voice")
        result.speech_end_s = wav.speech_end(samples, BUS_RATE)
        collector = _Collector(result, None, self._past_turns)
        sender = asyncio.create_task(self._stream(samples, collector, realtime, trailing_silence_s))
        try:
            await self._collect(collector, timeout_s, sender)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionLost):
                await sender
        return self._finish(collector)

    def _finish(self, collector: _Collector) -> TurnResult:
        result = collector.finish(self.output_rate)
        if result.turn_id:
            self._past_turns.add(result.turn_id)
        if self._speaking and collector.first_audio_mono is not None and not result.interrupted:
            self._speaker_until = collector.first_audio_mono + result.audio_s
        else:
            self._speaker_until = 0.0  # interrupted: the speaker was flushed
        return result

    async def _end_playback(self, wait: bool) -> None:
        """The virtual speaker finishes the last reply (in real time when ``wait``)."""
        if not self._speaking:
            return
        if wait:
            await self._stream_silence(self._speaker_until)
        self._speaking = False
        await self.session.send(PlaybackFinished())

    async def _stream_silence(self, until: float) -> None:
        """The microphone stays open: silence in real time until ``until`` (monotonic)."""
        silence = np.zeros(int(BUS_RATE * self.frame_ms / 1000), np.int16).tobytes()
        while time.monotonic() < until:
            await asyncio.sleep(min(self.frame_ms / 1000, max(0.0, until - time.monotonic())))
            await self.session.send_audio(silence)

    async def _stream(self, samples: np.ndarray, collector: _Collector, realtime: bool,
                      trailing_silence_s: float) -> None:
        max_bytes = (self.session.ready.max_frame_bytes if self.session.ready else 0) or 32000
        frame_ms = self.frame_ms if realtime else 100  # fewer, larger frames when racing
        size = max(160, min(int(BUS_RATE * frame_ms / 1000), max_bytes // 2))
        padded = np.concatenate([samples.astype(np.int16), np.zeros(int(trailing_silence_s * BUS_RATE), np.int16)])
        end_sample = round(collector.result.speech_end_s * BUS_RATE) if collector.result.speech_end_s else None
        period = size / BUS_RATE if realtime else 1 / FAST_FRAMES_PER_S
        # Racing stays under the gateway's audio speed limit: ahead of real time by at most half its
        # burst, then at 90% of the speed it allows.
        ready = self.session.ready
        speed = ready.max_audio_speed * 0.9 if ready and ready.max_audio_speed and not realtime else 0.0
        ahead_s = ready.audio_burst_s / 2 if ready and speed else 0.0
        start = time.monotonic()
        for count, offset in enumerate(range(0, len(padded), size), start=1):
            frame = padded[offset : offset + size]
            await self.session.send_audio(frame.tobytes())
            if end_sample is not None and collector.origin_mono is None and offset + len(frame) >= end_sample:
                collector.origin_mono, collector.origin_wall = time.monotonic(), time.time()
            paced = (offset + len(frame)) / BUS_RATE - ahead_s
            await _sleep_until(start + max(count * period, paced / speed if speed else 0.0))
        if collector.origin_mono is None:  # no speech found: time from the end of the input
            collector.origin_mono, collector.origin_wall = time.monotonic(), time.time()
        await self._stream_silence(float("inf"))  # until the turn ends and this task is cancelled

    async def _collect(self, collector: _Collector, timeout_s: float,
                       sender: asyncio.Task[None] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while not collector.done:
            if sender is not None and sender.done() and not sender.cancelled() and sender.exception():
                raise sender.exception()  # type: ignore[misc]
            if collector.waiting_for_nothing():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                collector.result.timed_out = True
                return
            try:
                item = await asyncio.wait_for(self._queue.get(), min(left, 0.5))
            except TimeoutError:
                continue
            if isinstance(item, ConnectionLost):
                raise item
            collector.take(item)
            if collector.first_audio_mono is not None and not self._speaking:
                self._speaking = True
                await self.session.send(PlaybackStarted())


async def _sleep_until(at: float) -> None:
    delay = at - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def run_turn(url: str, token: str, *, audio: np.ndarray | None = None, text: str | None = None,
                   options: StartOptions | None = None, realtime: bool = True,
                   trailing_silence_s: float = 1.5, timeout_s: float = 60.0,
                   output_sample_rate: int = 0, open_timeout_s: float = 5.0) -> TurnResult:
    """One turn on a fresh session: ``audio`` (int16 mono, 16 kHz) or ``text``."""
    if (audio is None) == (text is None):
        raise ValueError("give either audio or text")
    async with HeadlessClient(url, token, options, open_timeout_s=open_timeout_s,
                              output_sample_rate=output_sample_rate) as client:
        if text is not None:
            return await client.ask(text, timeout_s)
        assert audio is not None
        return await client.say(audio, realtime=realtime, trailing_silence_s=trailing_silence_s,
                                timeout_s=timeout_s)
