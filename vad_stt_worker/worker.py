"""The STT service: finds sessions, owns some of them, and runs a :class:`SessionRunner` for each.

Ownership across processes:

* a session is owned through a lease key (``keys.owner(sid, "stt")``, SET NX
  PX, a few seconds) that the owner refreshes; a dead owner's lease expires
  and another process claims the session on its next scan;
* new sessions are announced on ``keys.sessions_channel`` and every process
  also scans ``keys.sessions`` each second; a process that owns more
  sessions waits a little longer before claiming, which spreads the load;
* the owner writes its name in the session hash (field ``stt_worker``) and a
  position marker (``stt_pos``, see :mod:`vad_stt_worker.replay`): the audio
  position it reached, and where the audio not yet turned into a turn begins
  (the utterance in progress, with its pre-roll), and whether the session was
  awake. It writes the marker every lease refresh and at once when a turn is
  handed on, so a handed-on utterance is never replayed;
* a claimer that finds a marker (another worker's name: a dead worker; an
  empty name: a clean shutdown) replays the session's audio from that resume
  point, faster than real time: the utterance in progress becomes a turn as if
  nothing happened. Only when that audio is no longer in the stream (it keeps
  ``AUDIO_MAXLEN``) or the marker has no resume point (an older worker) does it
  read from the current end and tell the client (``Error(code="stt_worker_lost")``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from voicefleet.audio import samples_at
from voicefleet.bus import REDIS_DOWN
from voicefleet.codec import decode
from voicefleet.messages import AudioFrame, Cancel, Message, TranscribeRequest
from voicefleet.service import Service
from voicefleet.sessions import Sessions

from .files import FileTranscriber
from .lease import Lease
from .models import Models
from .recognizer import Recognizer, Transcriber
from .replay import Marker, id_after
from .session import SessionRunner, StartPoint, WorkerContext
from .settings import SttSettings
from .turn import TurnConfig

log = logging.getLogger(__name__)

#: Consumer group of the STT workers on the ``transcribe`` stream.
GROUP = "stt"
OWNER_FIELD = "stt_worker"
POSITION_FIELD = "stt_pos"
#: Never recreate a session hash that expired or was deleted meanwhile (it would have no TTL).
_HSET_IF_EXISTS = """
if redis.call('exists', KEYS[1]) == 1 then
    return redis.call('hset', KEYS[1], unpack(ARGV))
end
return -1
"""
#: Write the marker only while holding the lease (KEYS[2] = owner key, ARGV[1] = instance): a worker that
#: stalled and lost the session must not move a new owner's marker.
_HSET_IF_OWNER = """
if redis.call('get', KEYS[2]) == ARGV[1] and redis.call('exists', KEYS[1]) == 1 then
    return redis.call('hset', KEYS[1], select(2, unpack(ARGV)))
end
return -1
"""


@dataclass
class _Owned:
    runner: SessionRunner
    lease: Lease
    task: asyncio.Task[Any]


class SttService(Service):
    """VAD, wake word and speech-to-text for the sessions this process owns."""

    name = "stt"

    def __init__(self, settings: SttSettings, models: Models | None = None) -> None:
        super().__init__(settings)
        self.stt = settings
        self.models = models
        self.sessions: dict[str, _Owned] = {}
        self.session_store = Sessions(self.bus)
        self._claiming: set[str] = set()
        self._ctx: WorkerContext | None = None
        self.files: FileTranscriber | None = None
        self._hset_if_exists = self.bus.redis.register_script(_HSET_IF_EXISTS)
        self._hset_if_owner = self.bus.redis.register_script(_HSET_IF_OWNER)

    # ------------------------------------------------------------ lifecycle
    async def setup(self) -> None:
        if self.models is None:
            self.models = await asyncio.to_thread(Models.load, self.stt)
        transcriber = Transcriber(Recognizer(self.models.engine, self.models.filter))
        self._ctx = WorkerContext(
            bus=self.bus,
            settings=self.stt,
            config=TurnConfig.from_settings(self.stt),
            wake_models=self.models.wake,
            endpoint=self.models.endpoint,
            transcriber=transcriber,
            analysis=ThreadPoolExecutor(self.stt.analysis_threads, thread_name_prefix="analysis"),
            instance=self.instance,
        )
        self.files = FileTranscriber(self.bus, transcriber, self.stt.language)

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        return [
            self._announcements(), self._scan(), self._keep_leases(),
            # One recording at a time per process: the Whisper thread is one; other processes take the rest.
            self.consume(self.keys.transcribe, GROUP, self._transcribe, concurrency=1, drop_handled=True),
        ]

    def status(self) -> dict[str, Any]:
        engine = self.models.engine if self.models else None
        return {
            "sessions": len(self.sessions),
            "wake_words": list(self.models.wake.words) if self.models else [],
            "model": getattr(engine, "description", ""),
            # What the OpenAI-compatible /v1/models and the Wyoming adapter's describe list.
            "asr_models": engine.models() if engine else [],
        }

    async def _transcribe(self, msg: Message) -> None:
        if not isinstance(msg, TranscribeRequest):
            log.warning("ignoring a %s message on the transcribe stream", msg.type)
            return
        assert self.files is not None
        await self.files.handle(msg)

    async def on_cancel(self, cancel: Cancel) -> None:
        """A caller gave up on a recording (a cancel keyed by its request id)."""
        if self.files is not None:
            self.files.cancel(cancel.turn_id)

    async def teardown(self) -> None:
        # Clean shutdown: hand sessions over quietly (no "worker lost" error for the client).
        # Bounded: a stuck connection must not keep the process from exiting (the leases expire anyway).
        with contextlib.suppress(*REDIS_DOWN):
            async with asyncio.timeout(3):
                for sid, owned in list(self.sessions.items()):
                    await self._mark(sid, owned.runner, owner="")
                    await owned.lease.release()
        self.sessions.clear()
        if self._ctx is not None:
            self._ctx.transcriber.close()
            self._ctx.analysis.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ discovery
    async def _announcements(self) -> None:
        """Claim announced sessions at once instead of waiting for the next scan."""
        async for sid in self.session_store.announcements():
            self.spawn(self._claim(sid), name="stt-claim")

    async def _scan(self) -> None:
        """Find open sessions nobody owns (new, or their owner died)."""
        while True:
            try:
                fresh = time.time() - self.stt.session_stale_s
                candidates = [s for s in await self.session_store.open_since(fresh) if s not in self.sessions]
                if candidates:
                    owners = await self.bus.redis.mget([self.keys.owner(s, "stt") for s in candidates])
                    for sid, owner in zip(candidates, owners, strict=True):
                        if owner is None:
                            await self._claim(sid)
            except REDIS_DOWN as exc:
                log.debug("scan failed: %s", exc)
            await asyncio.sleep(self.stt.scan_interval_s)

    async def _claim(self, sid: str) -> None:
        if sid in self.sessions or sid in self._claiming or self.stopping or self._ctx is None:
            return
        if self.stt.max_sessions and len(self.sessions) >= self.stt.max_sessions:
            return
        self._claiming.add(sid)
        try:
            # The busier this process, the longer it lets a less busy one win the race.
            delay = self.stt.claim_delay_ms * len(self.sessions)
            if delay:
                await asyncio.sleep(delay / 1000)
            redis = self.bus.redis
            seen = await self.session_store.last_seen(sid)
            if seen is None or seen < time.time() - self.stt.session_stale_s:
                return  # closed (or abandoned) meanwhile
            lease = Lease(redis, self.keys.owner(sid, "stt"), self.instance, self.stt.lease_ttl_ms)
            if not await lease.acquire():
                return
            record = await self.session_store.load(sid)
            if record is None:
                await lease.release()
                return
            start = await self._start_point(sid)
            # The position is marked now too, not only by the first lease refresh: a worker killed before
            # that refresh left a new owner counting the session's audio from zero.
            at = _text(start.entry_id)
            marker = str(Marker(at, start.position, at, start.position, start.awake))
            args = [OWNER_FIELD, self.instance, POSITION_FIELD, marker]
            if await self._hset_if_exists(keys=[self.keys.session(sid)], args=args) < 0:
                await lease.release()
                return
            runner = SessionRunner(self._ctx, sid, record, start)
            # A turn handed on moves the marker at once: a new owner must not replay that utterance.
            runner.replay.on_settled = lambda: self._mark_soon(sid, runner)
            runner.mark_position = lambda: self._mark_if_owned(sid, runner)
            task = self.spawn(self._run(sid, runner), name=f"stt-session-{sid}")
            self.sessions[sid] = _Owned(runner, lease, task)
        except REDIS_DOWN as exc:
            log.warning("could not claim session (%s)", exc, extra={"session": sid})
        finally:
            self._claiming.discard(sid)

    async def _start_point(self, sid: str) -> StartPoint:
        """Fresh sessions are read from the start; taken-over ones from the marker's resume point."""
        redis, stream = self.bus.redis, self.keys.audio(sid)
        # This worker kind's private fields in the session hash (see the module docstring).
        owner_raw, position_raw = await redis.hmget(self.keys.session(sid), [OWNER_FIELD, POSITION_FIELD])
        if owner_raw is None:
            return StartPoint()
        previous = _text(owner_raw)
        takeover = previous not in ("", self.instance)
        try:
            info = await redis.xinfo_stream(stream)
        except Exception:  # no stream yet: nothing was said
            info = {}
        end_id = _text(info.get("last-generated-id", b"0-0"))
        trimmed = _text(info.get("max-deleted-entry-id", b"0-0"))  # Redis 7: newest entry MAXLEN cut off
        marker = Marker.parse(_text(position_raw or b""))
        if marker.resume_id and not id_after(trimmed, marker.resume_id):
            if takeover:
                log.info("taking over from %s: replaying the audio since %s", previous, marker.resume_id,
                         extra={"session": sid})
            return StartPoint(marker.resume_id.encode(), marker.resume_pos, takeover, awake=marker.awake)
        # No resume point (an older worker's marker), or its audio is gone: read from the end.
        position = marker.read_pos
        if marker.read_id:
            # Count the audio the old owner never reported, so audio_ms stays true.
            for _, fields in await redis.xrange(stream, min=f"({marker.read_id}", max=end_id) or []:
                with contextlib.suppress(Exception):
                    msg = decode(fields)  # type: ignore[arg-type]
                    if isinstance(msg, AudioFrame):
                        position += samples_at(msg.audio, msg.sample_rate)
        lost = bool(marker.resume_id) or takeover
        return StartPoint(end_id.encode(), position, takeover, lost=lost)

    async def _run(self, sid: str, runner: SessionRunner) -> None:
        crashed = False
        try:
            await runner.run()
        except Exception:
            # Let go, so that a scan (here or elsewhere) picks the session up afresh.
            log.exception("session runner crashed", extra={"session": sid})
            crashed = True
        finally:
            owned = self.sessions.get(sid)
            if owned is not None and owned.runner is runner and (runner.ended or crashed):
                self.sessions.pop(sid, None)
                with contextlib.suppress(*REDIS_DOWN):
                    await owned.lease.release()
                log.info("session released", extra={"session": sid})

    # ---------------------------------------------------------------- leases
    async def _keep_leases(self) -> None:
        period = self.stt.lease_ttl_ms / 3000
        while True:
            await asyncio.sleep(period)
            for sid, owned in list(self.sessions.items()):
                try:
                    await self._keep(sid, owned)
                except REDIS_DOWN as exc:
                    log.warning("lease refresh failed (%s)", exc, extra={"session": sid})

    async def _keep(self, sid: str, owned: _Owned) -> None:
        if not await owned.lease.refresh():
            log.warning("lost the session to another worker", extra={"session": sid})
            self._drop(sid, owned)
            return
        if not await self.session_store.is_open(sid):
            log.info("session is gone; leaving it", extra={"session": sid})
            self._drop(sid, owned)
            await owned.lease.release()
            return
        await self._mark(sid, owned.runner, owner=self.instance)

    async def _mark(self, sid: str, runner: SessionRunner, owner: str) -> None:
        await self._hset_if_owner(
            keys=[self.keys.session(sid), self.keys.owner(sid, "stt")],
            args=[self.instance, OWNER_FIELD, owner, POSITION_FIELD, runner.position_marker],
        )

    def _owns(self, sid: str, runner: SessionRunner) -> bool:
        """``runner`` still serves ``sid`` here, and this worker is not stopping (its own marker then)."""
        owned = self.sessions.get(sid)
        return owned is not None and owned.runner is runner and not self.stopping

    def _mark_soon(self, sid: str, runner: SessionRunner) -> None:
        """Write the marker now (from a task's done callback): a turn was given up on."""
        if self._owns(sid, runner):
            self.spawn(self._mark_now(sid, runner), name="stt-mark")

    async def _mark_if_owned(self, sid: str, runner: SessionRunner) -> None:
        """Write the marker now and wait for it (a turn is being handed on)."""
        if self._owns(sid, runner):
            await self._mark_now(sid, runner)

    async def _mark_now(self, sid: str, runner: SessionRunner) -> None:
        try:
            await self._mark(sid, runner, owner=self.instance)
        except REDIS_DOWN as exc:  # the next lease refresh writes it
            log.warning("could not write the position marker (%s)", exc, extra={"session": sid})

    def _drop(self, sid: str, owned: _Owned) -> None:
        self.sessions.pop(sid, None)
        owned.task.cancel()


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
