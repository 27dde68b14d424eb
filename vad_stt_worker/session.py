"""One owned session: read its audio stream, analyse it, emit events, produce turns.

The runner reads the session's capped audio stream in batches, analyses each
batch in a worker thread (VAD + wake word are a few ms per 80 ms), and acts
on what the :class:`~vad_stt_worker.turn.TurnDetector` decided: events go to
the client at once, transcriptions go to the process's single Whisper thread
and are awaited in tasks of their own, so the reader never waits on Whisper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicefleet import metrics, tracing
from voicefleet.aec import EchoCanceller
from voicefleet.audio import BUS_RATE, resample
from voicefleet.bus import REDIS_DOWN, Backoff, Bus, Entry
from voicefleet.messages import (
    BARGE_IN,
    BARGE_IN_UNHEARD,
    AudioChunk,
    AudioFrame,
    Configure,
    PlaybackFinished,
    PlaybackStarted,
    SessionEnded,
    SpeechStarted,
    SpeechStopped,
    TranscriptFinal,
    TranscriptPartial,
    TurnRequest,
    Wake,
)
from voicefleet.sessions import SessionRecord, Sessions

from .audio import from_bytes
from .endpoint import EndOfTurnModel
from .listener import Listener
from .recognizer import Job, Recognition, Transcriber
from .replay import ReplayTracker
from .settings import SttSettings
from .stt import normalize_language
from .turn import (
    Action,
    Asleep,
    Discard,
    Final,
    Partial,
    Speculate,
    SpeechEnd,
    SpeechStart,
    TurnConfig,
    WakeDetected,
)
from .wake import WakeModels, normalize_name

log = logging.getLogger(__name__)

LOST_MESSAGE = (
    "The speech recognizer handling this conversation stopped and another one took over; "
    "anything you were saying just then was lost, so please say it again."
)


@dataclass
class WorkerContext:
    """What every session of one worker process shares."""

    bus: Bus
    settings: SttSettings
    config: TurnConfig
    wake_models: WakeModels
    transcriber: Transcriber
    analysis: Executor
    instance: str
    endpoint: EndOfTurnModel | None = None


@dataclass
class StartPoint:
    """Where a new owner starts reading, and whether it took over from a dead worker."""

    entry_id: bytes = b"0-0"
    position: int = 0  # samples of session audio before entry_id
    takeover: bool = False
    lost: bool = False  # audio the old owner had not turned into turns is gone: tell the client
    awake: bool = False  # the wake word was heard before entry_id: the replay does not need it again


class SessionRunner:
    """Processes one session's audio while this process holds its lease."""

    def __init__(self, ctx: WorkerContext, session_id: str, record: SessionRecord, start: StartPoint) -> None:
        self.ctx = ctx
        self.sid = session_id
        self.sessions = Sessions(ctx.bus)
        self.user = record.user
        self.language = normalize_language(record.language or ctx.settings.language)
        #: Only the wake word matters (a Wyoming wake client): speech events, transcripts and turns are skipped.
        self.wake_only = record.wake_only
        self.start = start
        self.last_id: bytes = start.entry_id
        self.ended = False
        # Samples of the audio frames up to ``last_id``, counted as they are read: the samples analysed
        # so far lag behind ``last_id`` while a batch is in the listener (a new owner undercounted then).
        self._read = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        aec = EchoCanceller(ctx.settings.aec_offset_ms) if ctx.settings.aec and not record.echo_cancelled else None
        self.listener = Listener(ctx.config, ctx.wake_models, None, ctx.endpoint, aec)
        # Reply audio (the echo canceller's reference) is read from the start of a new session, else from now.
        self._out_id: bytes = b"0-0" if start.entry_id == b"0-0" and not start.takeover else b"$"
        self._ref_turns: dict[str, bool] = {}  # turn id -> its audio is played (False: cancelled)
        self._apply_wake_word(record.wake_word, report=False)
        self.replay = ReplayTracker(start.entry_id, start.position)  # see replay.py
        #: Writes the position marker now (set by the worker that owns the session).
        self.mark_position: Callable[[], Awaitable[None]] | None = None
        if start.awake:
            self.listener.detector.wake()
        self._speculation: tuple[int, Job] | None = None
        self._last_final: asyncio.Task[Any] | None = None
        self._open_utterance = 0  # utterance now being spoken (0: none)
        self._carried_on: set[int] = set()  # ended early, then continued by a later utterance: no turn of its own
        self._continues: dict[int, int] = {}  # utterance -> the earlier one whose audio it goes on from
        self._turn_of: dict[int, str] = {}  # utterance -> the turn it was handed on as (the last few)
        self._turn_sent_at: float | None = None  # monotonic time of our last TurnRequest
        self._reply_audible = False  # playback started since that turn
        self._reply_cut = False  # a barge-in cut the reply now playing: the echo canceller restarts when it stops

    # ------------------------------------------------------------------ run
    @property
    def position_marker(self) -> str:
        """The ``stt_pos`` marker: the audio position, and where a new owner would replay from (replay.py)."""
        return self.replay.marker(self.last_id, self._read, self.listener.detector)

    async def run(self) -> None:
        log.info(
            "session claimed (%s)",
            "takeover" if self.start.takeover else "start",
            extra={"session": self.sid},
        )
        if self.start.lost:
            await self.ctx.bus.emit_error(self.sid, "stt_worker_lost", LOST_MESSAGE)
        backoff = Backoff()
        keys = self.ctx.bus.keys
        audio_key, out_key = keys.audio(self.sid), keys.out(self.sid)
        try:
            while not self.ended:
                try:
                    if self.listener.aec is not None and self._out_id == b"$":
                        self._out_id = await self.ctx.bus.last_id(out_key)
                    # One XREAD for both: the reply audio (the echo canceller's reference) and the microphone.
                    streams = {audio_key: self.last_id}
                    if self.listener.aec is not None:
                        streams[out_key] = self._out_id
                    read = await self.ctx.bus.read_streams(streams, block_ms=1000, count=500)
                    backoff.reset()
                except REDIS_DOWN as exc:
                    log.warning("audio stream unreadable (%s); retrying", exc, extra={"session": self.sid})
                    await backoff.wait()
                    continue
                if read.get(out_key):
                    await self._reference(read[out_key])
                if read.get(audio_key):
                    await self._process(read[audio_key], time.time())
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _reference(self, entries: list[Entry]) -> None:
        """Reply audio the client will play: queue it as the echo canceller's reference."""
        aec = self.listener.aec
        assert aec is not None
        for entry in entries:
            self._out_id = entry.id
            msg = entry.message
            if not isinstance(msg, AudioChunk):
                continue
            played = self._ref_turns.get(msg.turn_id)
            if played is None:  # first piece of a turn: the client drops a turn cancelled before it played
                with contextlib.suppress(*REDIS_DOWN):
                    played = not await self.ctx.bus.is_cancelled(self.sid, msg.turn_id)
                played = self._ref_turns[msg.turn_id] = played is not False
                if len(self._ref_turns) > 64:
                    del self._ref_turns[next(iter(self._ref_turns))]
            if played:
                aec.add_reference(from_bytes(msg.audio), msg.sample_rate, msg.turn_id)

    async def _process(self, entries: list[Entry], read_at: float) -> None:
        audio: list[np.ndarray] = []
        for entry in entries:
            msg = entry.message
            if isinstance(msg, AudioFrame):
                pcm = resample(from_bytes(msg.audio), msg.sample_rate)
                audio.append(pcm)
                self.replay.frame(self.last_id, self._read)
                self._read += pcm.size
                self.last_id = entry.id
                continue
            if audio:  # control messages apply at their place in the audio
                await self._analyse(audio, read_at)
                audio = []
            self.last_id = entry.id
            if msg is None:
                metrics.BAD_MESSAGES.labels("stt").inc()
                log.warning("bad entry on audio stream: %s", entry.error, extra={"session": self.sid})
            elif isinstance(msg, PlaybackStarted):
                self.listener.set_playback(True)
                if self.listener.aec is not None:
                    self.listener.aec.playback_started()
                self._reply_audible = True
            elif isinstance(msg, PlaybackFinished):
                self.listener.set_playback(False)
                if self.listener.aec is not None:
                    self.listener.aec.playback_finished()
                    for turn_id in [t for t, played in self._ref_turns.items() if not played]:
                        self.listener.aec.drop(turn_id)
                    if self._reply_cut:  # what AEC3 still held of the reply never played (aec.py, restart)
                        self.listener.restart_aec()
                self._reply_cut = False
            elif isinstance(msg, Configure):
                self._configure(msg)
            elif isinstance(msg, SessionEnded):
                log.info("session ended (%s)", msg.reason or "closed", extra={"session": self.sid})
                self.ended = True
                return
        if audio:
            await self._analyse(audio, read_at)

    async def _analyse(self, parts: list[np.ndarray], read_at: float) -> None:
        samples = np.concatenate(parts) if len(parts) > 1 else parts[0]
        loop = asyncio.get_running_loop()
        try:
            actions = await loop.run_in_executor(self.ctx.analysis, self.listener.feed, samples)
        except Exception:  # a model failing on one batch must not end the session
            log.exception("audio analysis failed; skipping %d samples", samples.size, extra={"session": self.sid})
            return
        for action in actions:
            await self._act(action, read_at)

    # ---------------------------------------------------------------- actions
    def _audio_ms(self, position: int) -> float:
        return round((self.start.position + position) * 1000 / BUS_RATE, 1)

    def _wall_time(self, position: int, read_at: float) -> float:
        """Wall time at which input sample ``position`` was spoken (audio arrives in real time)."""
        return read_at - (self.listener.position - position) / BUS_RATE

    async def _act(self, action: Action, read_at: float) -> None:
        bus, sid = self.ctx.bus, self.sid
        self.replay.on_action(action, self.listener.detector)
        if self.wake_only and not isinstance(action, WakeDetected):
            return
        if isinstance(action, WakeDetected):
            log.info("wake word %s (%.2f)", action.word, action.score, extra={"session": sid})
            await bus.emit(Wake(session_id=sid, word=action.word, score=round(action.score, 3)))
        elif isinstance(action, SpeechStart):
            self._open_utterance = action.utterance
            if action.continues:
                self._carried_on.add(action.continues)
                self._continues[action.utterance] = action.continues
                if len(self._continues) > 8:  # utterances never handed on (too short, nothing said)
                    del self._continues[next(iter(self._continues))]
            await bus.emit(
                SpeechStarted(session_id=sid, seq=action.utterance, audio_ms=self._audio_ms(action.position))
            )
            if action.over_playback:
                await self._barge_in(BARGE_IN)
            elif self._turn_in_progress():  # nothing of the reply heard yet: its words go with the next turn
                await self._barge_in(BARGE_IN_UNHEARD)
        elif isinstance(action, SpeechEnd):
            self._open_utterance = 0
            await bus.emit(
                SpeechStopped(
                    session_id=sid,
                    seq=action.utterance,
                    audio_ms=self._audio_ms(action.position),
                    reason=action.reason,
                )
            )
        elif isinstance(action, Partial):
            job = self.ctx.transcriber.try_partial(
                action.audio,
                self.language,
                1e9,
                self.listener.wake_word,
                budget_s=self.ctx.settings.partial_interval_ms / 1000,
            )
            if job is not None:
                self._own(self._partial(action.utterance, job.future))
        elif isinstance(action, Speculate):
            self._drop_speculation()
            self._speculation = (action.utterance, self._submit(action.audio, 1e9))
        elif isinstance(action, Discard):
            self._drop_speculation()
        elif isinstance(action, Final):
            self._final(action, read_at)
        elif isinstance(action, Asleep):
            log.info("follow-up window closed; waiting for the wake word", extra={"session": sid})

    def _submit(self, audio: np.ndarray, voiced_ms: float) -> Job:
        return self.ctx.transcriber.submit(audio, self.language, voiced_ms, self.listener.wake_word)

    def _drop_speculation(self) -> None:
        """Speech resumed: drop the speculative job if it has not started; else show it as a partial."""
        if self._speculation is not None:
            utterance, job = self._speculation
            self._speculation = None
            if not job.drop():
                self._own(self._partial(utterance, job.future))

    def _final(self, action: Final, read_at: float) -> None:
        ts = {"speech_end": self._wall_time(action.speech_end, read_at), "eot": time.time()}
        spec, self._speculation = self._speculation, None
        if not self.ctx.transcriber.recognizer.hallucinations.worth_transcribing(action.voiced_ms):
            if spec is not None:
                spec[1].drop()
            log.info(
                "utterance %d too short to transcribe (%.0f ms voiced)",
                action.utterance,
                action.voiced_ms,
                extra={"session": self.sid},
            )
            return
        if spec is not None and spec[0] == action.utterance and action.speculated:
            future = spec[1].future  # same audio, already running or done
        else:
            if spec is not None:
                spec[1].drop()
            future = self._submit(action.audio, action.voiced_ms).future
        previous, self._last_final = self._last_final, None
        self._last_final = self._own(self._finish(action, future, ts, previous))
        self.replay.track(action, self._last_final)

    async def _finish(
        self,
        action: Final,
        future: asyncio.Future[Recognition],
        ts: dict[str, float],
        previous: asyncio.Task[Any] | None,
    ) -> None:
        if previous is not None:  # finals go out in the order they were spoken
            with contextlib.suppress(Exception):
                await previous
        try:
            rec = await future
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("transcription failed", extra={"session": self.sid})
            await self.ctx.bus.emit_error(self.sid, "stt_failed", "Your words could not be transcribed.")
            return
        if action.utterance in self._carried_on:
            self._carried_on.discard(action.utterance)
            log.info("utterance %d went on: its transcript is part of the next one", action.utterance,
                     extra={"session": self.sid})
            return
        latency_ms = round((rec.finished_at - ts["speech_end"]) * 1000)
        log.debug(
            "utterance %d: whisper %.0f ms, ready %.0f ms after the end-of-turn decision (%s)",
            action.utterance,
            rec.transcript.elapsed_s * 1000,
            (rec.finished_at - ts["eot"]) * 1000,
            "speculative" if action.speculated else "not speculative",
            extra={"session": self.sid},
        )
        if not rec.text:
            log.info(
                "nothing said in utterance %d (heard %r)",
                action.utterance,
                rec.transcript.text,
                extra={"session": self.sid, "ms": latency_ms},
            )
            return
        ts["transcript"] = rec.finished_at
        # The root of a spoken turn's trace, from the acoustic end of speech to the turn handed on.
        with tracing.span("stt.transcription", start=ts["speech_end"], kind=tracing.SpanKind.PRODUCER,
                          **{tracing.SESSION: self.sid}, whisper_ms=round(rec.transcript.elapsed_s * 1000),
                          speculative=action.speculated, chars=len(rec.text)):
            turn_id = await self._hand_on(rec, action, ts)
        self._turn_sent_at, self._reply_audible = time.monotonic(), False
        metrics.TURNS.labels("stt", "voice").inc()
        metrics.STAGE_LATENCY.labels("transcript").observe(max(0.0, rec.finished_at - ts["speech_end"]))
        log.info("final transcript: %r", rec.text, extra={"session": self.sid, "turn": turn_id, "ms": latency_ms})

    async def _hand_on(self, rec: Recognition, action: Final, ts: dict[str, float]) -> str:
        """Start the turn, enqueue it for the orchestrator, then show the final transcript; the turn id.

        The position marker moves past the utterance between the two (see replay.py): a client that
        saw the transcript knows that a new owner of the session will not make it a turn again.
        """
        bus = self.ctx.bus
        turn_id = await self.sessions.start_turn(self.sid, reason="new_turn")
        tracing.set_attributes(**{tracing.TURN: turn_id})
        # Finals go out in order: an utterance this one went on from was handed on (or not) already.
        continues = self._turn_of.get(self._continues.pop(action.utterance, 0), "")
        self._turn_of[action.utterance] = turn_id
        if len(self._turn_of) > 8:
            del self._turn_of[next(iter(self._turn_of))]
        await bus.enqueue(
            bus.keys.turns,
            TurnRequest(
                session_id=self.sid,
                turn_id=turn_id,
                user=self.user,
                text=rec.text,
                source="voice",
                continues=continues,
                ts=dict(ts),
            ),
        )
        self.replay.handed_on(action)
        if self.mark_position is not None:
            await self.mark_position()
        await bus.emit(
            TranscriptFinal(
                session_id=self.sid,
                turn_id=turn_id,
                seq=action.utterance,
                text=rec.text,
                language=rec.transcript.language,
                ts=dict(ts),
            )
        )
        return turn_id

    async def _partial(self, utterance: int, future: asyncio.Future[Recognition]) -> None:
        rec = await future
        log.debug("partial %d: %r (open: %d)", utterance, rec.text, self._open_utterance, extra={"session": self.sid})
        # A partial that lands after its utterance ended would flash stale text over the final.
        if rec.text and self._open_utterance == utterance:
            await self.ctx.bus.emit(TranscriptPartial(session_id=self.sid, seq=utterance, text=rec.text))

    # --------------------------------------------------------------- barge-in
    def _turn_in_progress(self) -> bool:
        """Our last turn is still being answered and its reply has not been heard yet."""
        if self._turn_sent_at is None or self._reply_audible:
            return False
        return time.monotonic() - self._turn_sent_at < self.ctx.settings.turn_busy_s

    async def _barge_in(self, reason: str) -> None:
        self._turn_sent_at = None
        turn_id = await self.sessions.cancel_current(self.sid, reason)
        if not turn_id:
            return
        if self.listener.aec is not None:
            # Later pieces never reach the speaker; what the client holds plays until it hears
            # `interrupted` and stops (PlaybackFinished drops the rest of the reference).
            self._ref_turns[turn_id] = False
            self._reply_cut = self.listener.detector.playing
        log.info("barge-in: cancelled the turn (%s)", reason, extra={"session": self.sid, "turn": turn_id})

    # --------------------------------------------------------------- settings
    def _configure(self, msg: Configure) -> None:
        if msg.listen_always:
            self._apply_wake_word("")
        elif msg.wake_word is not None:
            self._apply_wake_word(msg.wake_word)

    def _apply_wake_word(self, name: str | None, report: bool = True) -> None:
        word = normalize_name(name)
        if word is not None and word not in self.ctx.wake_models.words:
            fallback = self.ctx.settings.fallback_wake_word
            text = (
                f"Unknown wake word {name!r}; available: {', '.join(self.ctx.wake_models.words)}. "
                f"Listening for {fallback} instead."
            )
            log.warning(text, extra={"session": self.sid})
            self._own(self.ctx.bus.emit_error(self.sid, "unknown_wake_word", text))
            word = fallback if fallback in self.ctx.wake_models.words else None
        self.listener.set_wake_word(word)
        if report:
            log.info("wake word: %s", word or "none (always listening)", extra={"session": self.sid})

    # ------------------------------------------------------------------ tasks
    def _own(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session task failed", exc_info=task.exception(), extra={"session": self.sid})
