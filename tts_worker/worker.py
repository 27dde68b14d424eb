"""The TTS service: speech requests in, PCM audio chunks out.

Every entry of the ``speak`` work stream is one of two kinds:

* :class:`SpeakRequest`, one sentence of a turn's reply: its audio goes to the
  session as :class:`AudioChunk` events (``seq`` = the sentence, ``index`` =
  the piece, ``last`` on its final piece). Every request ends with a ``last``
  piece, even on error, so the gateway never waits for a sentence that will
  not come; only a cancel stops a turn without one (the gateway drops that
  turn's audio anyway).
* :class:`TtsRequest`, from ``POST /v1/tts``: the same audio goes back through
  ``Bus.reply`` to the gateway that waits for it.

Synthesis runs in a thread pool of ``concurrency`` threads, one sentence
(Piper's unit) per step; between steps and between pieces the worker checks
for a cancel, so a barge-in stops the audio within one piece.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicefleet import metrics, tracing
from voicefleet.audio import BUS_RATE, clamp_rate
from voicefleet.messages import AudioChunk, Cancel, Error, Message, Notice, SpeakRequest, TtsRequest, now
from voicefleet.models import ModelMissing, piper_voice
from voicefleet.service import Service
from voicefleet.sessions import Sessions

from . import hibari_engine
from .cancels import CancelBook
from .engine import SpeechEngine
from .normalize import normalize
from .piper_engine import PiperEngine
from .segments import split_for_speech
from .settings import TtsSettings
from .stream import PieceCutter
from .voices import VoiceCatalog, VoiceInfo, discover, resolve_model

log = logging.getLogger(__name__)

GROUP = "tts"
#: Pieces sent back to an HTTP request: it is written to a file, not played, so fewer and larger.
HTTP_PIECE_S = 1.0

#: Sends one piece of audio; the flag marks the last piece of the request.
Send = Callable[[bytes, bool], Awaitable[None]]


class TextTooLong(ValueError):
    """The request's text is over ``max_text_chars``; the message is for a person."""


def load_voices(settings: TtsSettings) -> VoiceCatalog:
    """Load and warm every voice (blocking: run it in a thread)."""
    packaged = piper_voice()
    hibari_default = hibari_engine.names_it(settings.default_voice)
    try:
        default_model = resolve_model("" if hibari_default else settings.default_voice, settings.voices_dir, packaged)
    except FileNotFoundError:
        hibari_engine.check_choice(settings.default_voice)  # "emma": say why, rather than "not found"
        raise
    infos = discover(default_model, settings.voices_dir)
    if default_model != packaged and packaged.name not in {i.model_path.name for i in infos}:
        infos += discover(packaged, None)  # the packaged voice stays available by name
    if hibari_default:
        infos.insert(0, hibari_engine.info())
    elif settings.hibari:
        try:
            infos.append(hibari_engine.info())
        except ModelMissing as exc:
            log.warning("not offering hibari's voice: %s", exc)
    engines: dict[str, SpeechEngine] = {}
    for info in infos:
        started = time.monotonic()
        try:
            engine = _load_engine(info, settings.threads)
            engine.warm()
        except Exception:
            if info is infos[0]:
                raise  # without its default voice the worker is useless: fail loudly
            log.exception("could not load voice %s; skipping it", info.name)
            continue
        engines[info.name] = engine
        log.info("voice %s loaded and warm", info.name, extra={"ms": round((time.monotonic() - started) * 1000)})
    return VoiceCatalog(engines, infos, default=infos[0].name)


def _load_engine(info: VoiceInfo, threads: int) -> SpeechEngine:
    if info.engine == "hibari":
        return hibari_engine.HibariEngine.load(threads=threads)
    return PiperEngine.load(info, threads=threads)


@dataclass
class Plan:
    """What to synthesize for one request, decided before any audio is made."""

    engine: SpeechEngine
    pieces: list[str]
    speech_rate: float
    sample_rate: int
    #: The request named a voice this worker does not have (the default is used).
    voice_missing: bool = False


class TtsService(Service):
    """Synthesizes speech requests (Piper or hibari voices) and streams the audio in short pieces."""

    name = "tts"

    def __init__(self, settings: TtsSettings, catalog: VoiceCatalog | None = None) -> None:
        super().__init__(settings)
        self.tts = settings
        #: Given by tests that share loaded voices between services; loaded in setup() otherwise.
        self.catalog = catalog
        self.cancels = CancelBook()
        self.sessions = Sessions(self.bus)
        self._executor = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="tts-synth")
        self._active = 0

    # ---- Service hooks --------------------------------------------------
    async def setup(self) -> None:
        if self.catalog is None:
            self.catalog = await asyncio.to_thread(load_voices, self.tts)
        log.info("voices: %s (default %s)", ", ".join(self.catalog.names), self.catalog.default)

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        return [
            self.consume(self.keys.speak, GROUP, self.handle, concurrency=self.tts.concurrency),
        ]

    def status(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"active": self._active, "concurrency": self.tts.concurrency}
        if self.catalog is not None:
            extra.update(self.catalog.status())
        return extra

    async def teardown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- dispatch ---------------------------------------------------------
    async def handle(self, msg: Message) -> None:
        self._active += 1
        try:
            if isinstance(msg, SpeakRequest):
                with tracing.span("tts.synthesize", msg, kind=tracing.SpanKind.CONSUMER, seq=msg.seq,
                                  final=msg.final, chars=len(msg.text)):
                    await self.speak(msg)
            elif isinstance(msg, TtsRequest):
                with tracing.span("tts.synthesize_http", msg, kind=tracing.SpanKind.CONSUMER, chars=len(msg.text)):
                    await self.answer_http(msg)
            else:
                log.warning("ignoring a %s message on the speak stream", msg.type)
        finally:
            self._active -= 1

    async def on_cancel(self, cancel: Cancel) -> None:
        self.cancels.add(cancel.session_id, cancel.turn_id)
        log.info("cancel heard (%s)", cancel.reason, extra={"session": cancel.session_id, "turn": cancel.turn_id})

    # ---- one sentence of a turn -----------------------------------------
    async def speak(self, msg: SpeakRequest) -> None:
        """Synthesize one sentence of a turn and emit it as audio chunks."""
        started = time.monotonic()
        ts = {**msg.ts, "tts_start": now()}
        ctx = {"session": msg.session_id, "turn": msg.turn_id}
        if self.cancels.is_cancelled(msg.session_id, msg.turn_id, started) or await self.bus.is_cancelled(
            msg.session_id, msg.turn_id
        ):
            log.info("dropping sentence %d of a cancelled turn", msg.seq, extra=ctx)
            return

        index = 0
        asked_rate, language = msg.sample_rate, ""
        # The session record gives the client's rate when none was asked, and the session's language
        # when no voice was named and the loaded voices speak more than one.
        assert self.catalog is not None, "setup() loads the voices before any request"
        if not asked_rate or (not msg.voice and len(self.catalog.languages) > 1):
            record = await self.sessions.load(msg.session_id)
            asked_rate = asked_rate or (record.output_sample_rate if record is not None else BUS_RATE)
            language = record.language if record is not None else ""
        rate_hz = self._output_rate(asked_rate, None)

        async def send(audio: bytes, last: bool) -> None:
            nonlocal index
            if index == 0:
                ts["tts_first_audio"] = now()
            chunk = AudioChunk(
                session_id=msg.session_id,
                turn_id=msg.turn_id,
                seq=msg.seq,
                index=index,
                last=last,
                final=last and msg.final,
                sample_rate=rate_hz,
                audio=audio,
                ts=dict(ts),
            )
            index += 1
            await self.bus.emit(chunk)

        async def still_wanted(ask_redis: bool) -> bool:
            if self.cancels.is_cancelled(msg.session_id, msg.turn_id, started):
                return False
            return not (ask_redis and await self.bus.is_cancelled(msg.session_id, msg.turn_id))

        try:
            plan = self._plan(msg.text, msg.voice, msg.speech_rate, asked_rate, first=msg.seq == 0, language=language)
            if plan.voice_missing and msg.seq == 0:
                await self.bus.emit(
                    Notice(
                        session_id=msg.session_id,
                        turn_id=msg.turn_id,
                        code="voice_unavailable",
                        message=f"The voice {msg.voice!r} is not available; using {plan.engine.name} instead.",
                    )
                )
            rate_hz = plan.sample_rate
            finished = await self._render(plan, send, still_wanted, piece_s=self.tts.chunk_ms / 1000)
        except TextTooLong as exc:
            await self._fail_sentence(msg, "text_too_long", str(exc), send)
            return
        except Exception:
            log.exception("synthesis of sentence %d failed", msg.seq, extra=ctx)
            await self._fail_sentence(
                msg, "tts_failed", "Speech synthesis failed for part of the reply, so it was skipped.", send
            )
            return
        elapsed_ms = round((time.monotonic() - started) * 1000)
        if not finished:
            log.info("stopped sentence %d: turn cancelled", msg.seq, extra=ctx)
            return
        first_ms = round((ts.get("tts_first_audio", ts["tts_start"]) - ts["tts_start"]) * 1000)
        tracing.set_attributes(pieces=index, first_audio_ms=first_ms)
        log.info(
            "spoke sentence %d%s: %d pieces, first audio after %d ms, with %s",
            msg.seq, " (final)" if msg.final else "", index, first_ms, plan.engine.name,
            extra={**ctx, "ms": elapsed_ms},
        )  # fmt: skip

    async def _fail_sentence(self, msg: SpeakRequest, code: str, message: str, send: Send) -> None:
        """Report the error, then close the sentence so the turn's audio does not stall."""
        metrics.ERRORS.labels(self.name, code).inc()
        await self.bus.emit(
            Error(session_id=msg.session_id, turn_id=msg.turn_id, seq=msg.seq, code=code, message=message)
        )
        await send(b"", True)

    # ---- a whole text for HTTP ------------------------------------------
    async def answer_http(self, msg: TtsRequest) -> None:
        """Synthesize a ``POST /v1/tts`` text and push the audio to the request's reply list."""
        started = time.monotonic()
        index = 0

        async def send(audio: bytes, last: bool) -> None:
            nonlocal index
            await self.bus.reply(
                msg.request_id,
                AudioChunk(
                    session_id=msg.session_id,
                    seq=msg.seq,
                    index=index,
                    last=last,
                    final=last,
                    sample_rate=plan.sample_rate,
                    audio=audio,
                    ts=msg.ts,
                ),
            )
            index += 1

        async def still_wanted(ask_redis: bool) -> bool:
            # The gateway cancels a request it gave up on (timeout), keyed by the request id.
            if self.cancels.is_cancelled(msg.session_id, msg.request_id, started):
                return False
            return not (ask_redis and await self.bus.is_cancelled(msg.session_id, msg.request_id))

        try:
            plan = self._plan(msg.text, msg.voice, msg.speech_rate, msg.sample_rate, first=True)
            if plan.voice_missing:
                await self._fail_http(msg, "unknown_voice", self._unknown_voice_message(msg.voice or ""))
                return
            finished = await self._render(plan, send, still_wanted, piece_s=HTTP_PIECE_S)
        except TextTooLong as exc:
            await self._fail_http(msg, "text_too_long", str(exc))
            return
        except Exception:
            log.exception("synthesis for HTTP request %s failed", msg.request_id)
            await self._fail_http(msg, "tts_failed", "Speech synthesis failed for this text.")
            return
        log.info(
            "%s HTTP request %s: %d pieces", "answered" if finished else "cancelled", msg.request_id, index,
            extra={"ms": round((time.monotonic() - started) * 1000)},
        )  # fmt: skip

    async def _fail_http(self, msg: TtsRequest, code: str, message: str) -> None:
        metrics.ERRORS.labels(self.name, code).inc()
        await self.bus.reply(msg.request_id, Error(session_id=msg.session_id, code=code, message=message))

    # ---- shared -----------------------------------------------------------
    def _unknown_voice_message(self, choice: str) -> str:
        assert self.catalog is not None
        return f"There is no voice called {choice!r}. Available voices: {', '.join(self.catalog.names)}."

    def _plan(
        self, text: str, voice: str | None, speech_rate: float, sample_rate: int, first: bool, language: str = ""
    ) -> Plan:
        """Check the request, pick the voice (by name, else the default for ``language``), cut the text into pieces."""
        assert self.catalog is not None, "setup() loads the voices before any request"
        if len(text) > self.tts.max_text_chars:
            raise TextTooLong(
                f"The text is too long to speak: {len(text)} characters, "
                f"and at most {self.tts.max_text_chars} are allowed."
            )
        engine = self.catalog.resolve(voice, language)
        voice_missing = engine is None
        if engine is None:
            log.warning("unknown voice %r; using %s", voice, self.catalog.default)
            engine = self.catalog.resolve(None, language)
            assert engine is not None
        spoken = normalize(text)
        if len(spoken) > self.tts.max_text_chars:
            # Checked again once numbers and symbols are spelled out: "1234567" is 8x longer spoken.
            raise TextTooLong(
                f"The text is too long to speak once numbers and symbols are read out: {len(spoken)} "
                f"characters, and at most {self.tts.max_text_chars} are allowed."
            )
        first_limit = self.tts.first_piece_chars if first else 0
        pieces = split_for_speech(spoken, self.tts.max_chars_per_synthesis, first_limit) if spoken else []
        return Plan(
            engine=engine,
            pieces=pieces,
            speech_rate=self._clamp_rate(speech_rate),
            sample_rate=self._output_rate(sample_rate, engine),
            voice_missing=voice_missing,
        )

    def _clamp_rate(self, rate: float) -> float:
        if not math.isfinite(rate) or rate <= 0:
            return 1.0
        return min(max(rate, self.tts.min_speech_rate), self.tts.max_speech_rate)

    def _output_rate(self, asked: int, engine: SpeechEngine | None) -> int:
        """The asked rate within 8-48 kHz; the voice's own rate when none was asked (0)."""
        if asked <= 0:
            return engine.sample_rate if engine is not None else 22050
        return clamp_rate(asked)

    async def _render(
        self,
        plan: Plan,
        send: Send,
        still_wanted: Callable[[bool], Awaitable[bool]],
        piece_s: float,
    ) -> bool:
        """Synthesize ``plan`` and send its pieces; False when it was cancelled midway.

        ``still_wanted(True)`` is asked before each synthesis step (it may ask
        Redis), ``still_wanted(False)`` before each piece (local check only).
        """
        loop = asyncio.get_running_loop()
        cutter = PieceCutter(plan.engine.sample_rate, plan.sample_rate, max(1, round(piece_s * plan.sample_rate)))
        parts = _audio_parts(plan)
        done = False
        while not done:
            if not await still_wanted(True):
                return False
            ready, done = await loop.run_in_executor(self._executor, _step, parts, cutter)
            for i, piece in enumerate(ready):
                if not await still_wanted(False):
                    return False
                await send(piece, done and i == len(ready) - 1)
        return True


def _audio_parts(plan: Plan) -> Iterator[np.ndarray]:
    for text in plan.pieces:
        yield from plan.engine.synthesize(text, plan.speech_rate)


def _step(parts: Iterator[np.ndarray], cutter: PieceCutter) -> tuple[list[bytes], bool]:
    """Synthesize the next part (a sentence): the pieces it completes, and whether it was the end."""
    audio = next(parts, None)
    if audio is None:
        return cutter.finish(), True
    return cutter.push(audio), False
