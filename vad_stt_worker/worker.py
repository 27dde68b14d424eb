"""The STT service: finds sessions, owns some of them, and runs a :class:`SessionRunner` for each.

Ownership across processes:

* a session is owned through a lease key (``keys.owner(sid, "stt")``, SET NX
  PX, a few seconds) that the owner refreshes; a dead owner's lease expires
  and another process claims the session on its next scan;
* new sessions are announced on ``keys.sessions_channel`` and every process
  also scans ``keys.sessions`` each second; a process that owns more
  sessions waits a little longer before claiming, which spreads the load;
* the owner writes its name in the session hash (field ``stt_worker``) and the
  audio position it reached (``stt_pos``). A claimer that finds another
  worker's name there knows it is taking over from a dead worker: it tells
  the client (``Error(code="stt_worker_lost")``) and reads the audio from its
  current end. A clean shutdown writes an empty name: a quiet handover.
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
            marker = f"{_text(start.entry_id)} {start.position}"
            args = [OWNER_FIELD, self.instance, POSITION_FIELD, marker]
            if await self._hset_if_exists(keys=[self.keys.session(sid)], args=args) < 0:
                await lease.release()
                return
            runner = SessionRunner(self._ctx, sid, record, start)
            task = self.spawn(self._run(sid, runner), name=f"stt-session-{sid}")
            self.sessions[sid] = _Owned(runner, lease, task)
        except REDIS_DOWN as exc:
            log.warning("could not claim session (%s)", exc, extra={"session": sid})
        finally:
            self._claiming.discard(sid)

    async def _start_point(self, sid: str) -> StartPoint:
        """Fresh sessions are read from the start; taken-over ones from the current end."""
        redis, stream = self.bus.redis, self.keys.audio(sid)
        # This worker kind's private fields in the session hash (see the module docstring).
        owner_raw, position_raw = await redis.hmget(self.keys.session(sid), [OWNER_FIELD, POSITION_FIELD])
        if owner_raw is None:
            return StartPoint()
        previous = _text(owner_raw)
        try:
            end_id: bytes = (await redis.xinfo_stream(stream))["last-generated-id"]
        except Exception:  # no stream yet: nothing was said
            end_id = b"0-0"
        marked_id, _, marked_pos = _text(position_raw or b"").partition(" ")
        position = int(marked_pos) if marked_pos.isdigit() else 0
        if marked_id:
            # Count the audio the old owner never reported, so audio_ms stays true.
            for _, fields in await redis.xrange(stream, min=f"({marked_id}", max=end_id) or []:
                with contextlib.suppress(Exception):
                    msg = decode(fields)  # type: ignore[arg-type]
                    if isinstance(msg, AudioFrame):
                        position += samples_at(msg.audio, msg.sample_rate)
        return StartPoint(end_id, position, takeover=previous not in ("", self.instance))

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
        await self._hset_if_exists(
            keys=[self.keys.session(sid)],
            args=[OWNER_FIELD, owner, POSITION_FIELD, runner.position_marker],
        )

    def _drop(self, sid: str, owned: _Owned) -> None:
        self.sessions.pop(sid, None)
        owned.task.cancel()


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
