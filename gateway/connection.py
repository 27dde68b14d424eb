"""One client connection: the WebSocket on one side, the session's streams on the other.

Two loops run per connection: ``_inbound`` (client frames onto the bus) and
``_outbound`` (the session's out stream to the client, reply audio reordered).
A third refreshes the session's registration, which also restores it after a
Redis restart. Every limit violation ends in an ``error`` event and a clean
close; nothing the client sends can raise out of these loops.

A connection that drops without ``stop`` leaves its session waiting
``resume_grace_s`` for the client to come back (``start.resume_session_id``):
the turn in progress goes on, and what the client missed is replayed from the
session's out stream after the last ``stream_id`` it received. Every event
from the out stream carries its ``stream_id`` for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Coroutine
from typing import Any

import numpy as np
import soxr
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voicefleet import codec, metrics, tracing
from voicefleet.audio import BUS_RATE
from voicefleet.bus import AUDIO_MAXLEN, REDIS_DOWN, Backoff, Bus
from voicefleet.messages import (
    CLIENT_MESSAGES,
    AudioChunk,
    AudioFrame,
    Configure,
    Error,
    Interrupt,
    Interrupted,
    Message,
    Notice,
    PlaybackFinished,
    PlaybackStarted,
    Ready,
    Start,
    Stop,
    TextInput,
    TurnRequest,
    new_id,
    now,
)
from voicefleet.sessions import SessionRecord, Sessions

from .reorder import AudioOrder
from .settings import GatewaySettings

log = logging.getLogger(__name__)

#: Events that stay on the bus (internal), never forwarded to the client.
INTERNAL = {"audio_frame", "session_started", "session_ended", "turn_request", "speak_request", "cancel"}

#: How long a resume waits for the old connection to be let go (the drop noticed) before taking the session over.
RESUME_WAIT_S = 1.0

# WebSocket close codes (RFC 6455).
NORMAL, GOING_AWAY, UNSUPPORTED, POLICY, TOO_BIG, TRY_LATER = 1000, 1001, 1003, 1008, 1009, 1013


class Closing(Exception):
    """End the connection with ``code`` after telling the client ``message``."""

    def __init__(self, error: str, message: str, close_code: int = POLICY) -> None:
        super().__init__(message)
        self.error, self.message, self.close_code = error, message, close_code


class ClientStopped(Exception):
    """The client sent ``stop``: end the session now (no grace period)."""


class TakenOver(Exception):
    """Another connection resumed this session: leave it to that one."""


class ClientStalled(Exception):
    """The client stopped taking what is sent (a send waited past ``send_timeout_s``): treat it as gone."""


class RateLimit:
    """Token bucket: ``rate`` units per second sustained, bursts up to ``burst`` (one second's worth by default)."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = rate if burst is None else burst
        self.tokens, self.last = self.burst, time.monotonic()

    def allow(self, amount: float = 1.0) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False


class Connection:
    """Serves one authenticated WebSocket as one session."""

    def __init__(
        self,
        ws: WebSocket,
        bus: Bus,
        settings: GatewaySettings,
        user: str,
        voices: list[str],
        wake_words: list[str],
        registry: dict[str, Connection] | None = None,
        lingering: set[asyncio.Task[None]] | None = None,
        gateway_instance: str = "",
    ) -> None:
        self.ws, self.bus, self.settings, self.user = ws, bus, settings, user
        #: This gateway's connections by session id (cancels are routed through it).
        self.registry = registry if registry is not None else {}
        #: Grace-period tasks of sessions whose client went away (owned by the gateway process).
        self.lingering = lingering if lingering is not None else set()
        self.keys = bus.keys
        self.voices, self.wake_words = voices, wake_words
        self.session_id = new_id()
        #: Names this connection (and its gateway process) in the session record: a resumed session is
        #: attached to its new one, and taken over from a connection whose gateway lives but missed the drop.
        self.connection_id = f"{gateway_instance}/{new_id()}" if gateway_instance else new_id()
        self.opened = time.monotonic()
        self.last_heard = time.monotonic()
        self.order = AudioOrder(self.session_id)
        self.sessions = Sessions(bus)
        self.record = SessionRecord(user=user)
        self.frame_seq = 0
        self.resampler: soxr.ResampleStream | None = None
        self.client_rate = BUS_RATE
        self.limiter = RateLimit(settings.max_frames_per_s)
        #: Seconds of audio, counted at the client's declared rate before any resampling.
        self.audio_budget = RateLimit(settings.max_audio_speed, settings.audio_burst_s)
        self.text_budget = RateLimit(settings.max_text_messages_per_s)
        self.text_bytes_budget = RateLimit(settings.max_text_bytes_per_s)
        self._send_lock = asyncio.Lock()
        #: Set when a send to the client timed out: nothing more is sent, and the connection ends.
        self._stalled = asyncio.Event()
        self._bus_down_reported = False
        self.last_out_id: bytes = b"0-0"
        #: Reply audio the resuming client already has: skipped from the replay.
        self._skip_bytes = 0
        self._checked_turns: set[str] = set()
        #: The turn whose reply audio is being sent: (turn id, its first chunk's traceparent, epoch start).
        self._audio_out: tuple[str, str | None, float] | None = None

    # ---------------------------------------------------------------- public
    async def serve(self, first: Start) -> None:
        await self._open(first)
        tasks = [
            asyncio.create_task(self._inbound(), name="inbound"),
            asyncio.create_task(self._outbound(), name="outbound"),
            asyncio.create_task(self._keepalive(), name="keepalive"),
            asyncio.create_task(self._watch_stall(), name="stall"),
        ]
        reason, ending = "client closed", "close"
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if isinstance(exc, TakenOver):
                    reason, ending = "resumed by another connection", "leave"
                elif isinstance(exc, Closing):
                    reason = exc.error
                    await self._fail(exc)
                elif isinstance(exc, (WebSocketDisconnect, ClientStalled)):
                    ending = "detach" if self.settings.resume_grace_s > 0 else "close"
                    if isinstance(exc, ClientStalled):
                        reason = "client_stalled"
                elif isinstance(exc, ClientStopped) or exc is None:
                    pass
                else:
                    reason = "internal error"
                    log.error("connection loop failed", exc_info=exc, extra={"session": self.session_id})
                    await self._fail(
                        Closing("internal", "The gateway hit an internal error.", close_code=1011)
                    )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.registry.get(self.session_id) is self:
                del self.registry[self.session_id]
            if ending == "detach":
                await self._detach()
            elif ending == "close":
                await self._close_session(reason)
            else:
                log.info("connection left: %s", reason, extra={"session": self.session_id})
            if self.ws.client_state == WebSocketState.CONNECTED:
                # A stalled client cannot take a close frame either; the server gives up on it
                # (and drops the TCP connection) after its own close timeout.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(GOING_AWAY if self._stalled.is_set() else NORMAL),
                                           self.settings.send_timeout_s)

    async def on_cancel(self, turn_id: str, reason: str) -> None:
        """A turn of this session was cancelled (barge-in): tell the client to flush."""
        self.order.drop(turn_id)
        await self._send_event(Interrupted(session_id=self.session_id, turn_id=turn_id, reason=reason))

    # ----------------------------------------------------------- lifecycle
    async def _open(self, first: Start) -> None:
        s = self.settings
        if not s.min_sample_rate <= first.sample_rate <= s.max_sample_rate:
            raise Closing(
                "bad_sample_rate",
                f"Sample rate {first.sample_rate} Hz is not supported; "
                f"send between {s.min_sample_rate} and {s.max_sample_rate} Hz ({BUS_RATE} is best).",
                UNSUPPORTED,
            )
        out_rate = first.output_sample_rate or first.sample_rate
        if not s.min_sample_rate <= out_rate <= s.max_sample_rate:
            raise Closing("bad_sample_rate", f"Output sample rate {out_rate} Hz is not supported.", UNSUPPORTED)
        if first.voice and self.voices and first.voice not in self.voices:
            raise Closing("unknown_voice", f"Voice {first.voice!r} is not available.", UNSUPPORTED)
        self.client_rate = first.sample_rate
        if self.client_rate != BUS_RATE:
            self.resampler = soxr.ResampleStream(self.client_rate, BUS_RATE, 1, dtype="int16")
        resume_failed = False
        if first.resume_session_id:
            resume_failed = not await self._resume(first, out_rate)
        if not self.record.connection:
            await self._start_fresh(first, out_rate)
        self.registry[self.session_id] = self
        await self._send_event(
            Ready(
                session_id=self.session_id,
                sample_rate=self.client_rate,
                output_sample_rate=self.record.output_sample_rate,
                wake_words=self.wake_words,
                voices=self.voices,
                max_frame_bytes=s.max_frame_bytes,
                max_audio_speed=s.max_audio_speed,
                audio_burst_s=s.audio_burst_s,
                resumed=bool(first.resume_session_id) and not resume_failed,
                stream_id=self.last_out_id.decode(),
            )
        )
        if resume_failed:
            await self._send_event(Notice(
                session_id=self.session_id, code="resume_failed",
                message="The session could not be resumed (it ended, or its grace period ran out); "
                        "this is a new session."))
        await self._deliver_pending_notices()

    async def _start_fresh(self, first: Start, out_rate: int) -> None:
        wake = first.wake_word if first.wake_word is not None else self.settings.default_wake_word
        self.record = SessionRecord(
            user=self.user,
            client_sample_rate=self.client_rate,
            output_sample_rate=out_rate,
            wake_word=wake or "",
            voice=first.voice or "",
            speech_rate=first.speech_rate,
            language=first.language or "",
            echo_cancelled=first.echo_cancelled,
            created=time.time(),
            connection=self.connection_id,
        )
        self.last_out_id = b"0-0"
        await self.sessions.open(self.session_id, self.record)
        log.info("session opened", extra={"session": self.session_id})

    async def _resume(self, first: Start, out_rate: int) -> bool:
        """Attach to the session the client had; False when it is gone (a fresh one is opened instead)."""
        sid = first.resume_session_id or ""
        after = first.resume_after
        if after is not None and not re.fullmatch(r"\d{1,20}-\d{1,20}", after):
            raise Closing("bad_resume_after", f"resume_after {after[:40]!r} is not a stream_id this server sent.",
                          UNSUPPORTED)
        try:
            record = await self.sessions.attach(sid, self.user, self.connection_id, RESUME_WAIT_S)
        except PermissionError:
            raise Closing("resume_refused", "That session belongs to another user, so it cannot be resumed.",
                          POLICY) from None
        if record is None:
            log.info("the session to resume has ended; opening a new one",
                     extra={"session": sid})
            return False
        self.session_id, self.order = sid, AudioOrder(sid)
        record.client_sample_rate, record.output_sample_rate = self.client_rate, out_rate
        self.record = record
        await self.sessions.save(sid, record)
        if after is None:
            self.last_out_id = await self.bus.last_id(self.keys.out(sid))
        else:
            self.last_out_id = after.encode()
            await self._prime(after, first.resume_audio_bytes)
        log.info("session resumed after %s", after, extra={"session": sid})
        return True

    async def _prime(self, after: str, audio_bytes: int) -> None:
        """Rebuild the reply-audio order as the client left it, so that the replay goes on where it stopped.

        The client counted ``audio_bytes`` of audio after the event ``after``;
        the part of those released by the entry ``after`` itself is consumed
        here, the rest is skipped from the replay.
        """
        stream = self.keys.out(self.session_id)
        first: bytes | str = "-"
        tail = 0
        while True:
            entries = await self.bus.range(stream, first, after, count=500)
            for entry in entries:
                if isinstance(entry.message, AudioChunk):
                    outputs = await self._order(entry.message)
                    if entry.id.decode() == after:
                        tail = sum(len(o) for o in _after_last_event(outputs))
            if len(entries) < 500:
                break
            first = b"(" + entries[-1].id
        self._skip_bytes = max(0, audio_bytes - tail)

    async def _order(self, chunk: AudioChunk) -> list[Message | bytes]:
        """Push a reply-audio chunk through the order; a turn cancelled while nobody listened is dropped."""
        if chunk.turn_id not in self._checked_turns:
            self._checked_turns.add(chunk.turn_id)
            if await self.bus.is_cancelled(self.session_id, chunk.turn_id):
                self.order.drop(chunk.turn_id)
        return self.order.push(chunk)

    async def _detach(self) -> None:
        """The client went away without ``stop``: keep the session for ``resume_grace_s``."""
        sid, user = self.session_id, self.user
        try:
            if await self.sessions.attached_connection(sid) != self.connection_id:
                return  # the client is back already, on another connection
            await self.sessions.detach(sid, self.record)
        except REDIS_DOWN:
            return
        away_since = self.record.away_since
        log.info("client gone; the session waits %.0f s for it", self.settings.resume_grace_s,
                 extra={"session": sid})

        async def end_unless_resumed() -> None:
            await asyncio.sleep(self.settings.resume_grace_s)
            with contextlib.suppress(*REDIS_DOWN):
                record = await self.sessions.load(sid)
                if record is not None and not record.connection and record.away_since == away_since:
                    await self.sessions.close(sid, user, "client_gone")
                    log.info("session closed: the client did not come back", extra={"session": sid})

        task = asyncio.create_task(end_unless_resumed(), name=f"grace-{sid}")
        self.lingering.add(task)
        task.add_done_callback(self.lingering.discard)

    async def _deliver_pending_notices(self) -> None:
        """Notices (a timer that rang) kept for this user while no session was open."""
        for notice in await self.sessions.take_notices(self.user):
            notice.session_id = self.session_id
            await self._send_event(notice)

    async def _close_session(self, reason: str) -> None:
        sid = self.session_id
        with contextlib.suppress(*REDIS_DOWN):
            await self.sessions.close(sid, self.user, reason)
        log.info("session closed: %s", reason, extra={"session": sid,
                 "ms": round((time.monotonic() - self.opened) * 1000)})

    async def _fail(self, err: Closing) -> None:
        if self._stalled.is_set():
            return
        async with self._send_lock:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(close_with_error(self.ws, err, self.session_id), self.settings.send_timeout_s)

    # -------------------------------------------------------------- inbound
    async def _inbound(self) -> None:
        while True:
            timeout = min(
                self.settings.idle_timeout_s - (time.monotonic() - self.last_heard),
                self.settings.max_session_s - (time.monotonic() - self.opened),
            )
            if timeout <= 0:
                self._raise_for_time()
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout=timeout)
            except TimeoutError:
                self._raise_for_time()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", NORMAL))
            self.last_heard = time.monotonic()
            if message.get("bytes") is not None:
                await self._on_audio(message["bytes"])
            elif message.get("text") is not None:
                await self._on_text(message["text"])

    def _raise_for_time(self) -> None:
        if time.monotonic() - self.opened >= self.settings.max_session_s:
            raise Closing("session_too_long",
                          f"The session reached its {self.settings.max_session_s:.0f} s limit; reconnect to go on.",
                          NORMAL)
        raise Closing("idle_timeout",
                      f"Nothing was received for {self.settings.idle_timeout_s:.0f} s, so the session was closed.",
                      NORMAL)

    async def _on_audio(self, data: bytes) -> None:
        if len(data) > self.settings.max_frame_bytes:
            raise Closing("frame_too_large",
                          f"An audio frame of {len(data)} bytes is over the {self.settings.max_frame_bytes}-byte "
                          "limit; send smaller frames (20-100 ms each).", TOO_BIG)
        if len(data) % 2:
            await self._send_error("bad_frame", "An audio frame had an odd number of bytes; "
                                   "send 16-bit little-endian mono PCM.")
            return
        if not self.limiter.allow():
            raise Closing("too_many_frames",
                          f"More than {self.settings.max_frames_per_s:.0f} frames per second were sent; "
                          "send larger frames less often.", POLICY)
        if not self.audio_budget.allow(len(data) / 2 / self.client_rate):
            raise Closing("audio_too_fast",
                          f"Audio arrived faster than {self.settings.max_audio_speed:g}x real time "
                          f"(beyond a {self.settings.audio_burst_s:g} s burst); stream it as it is recorded.",
                          POLICY)
        metrics.FRAMES_IN.inc()
        pcm = data
        if self.resampler is not None:
            samples = self.resampler.resample_chunk(np.frombuffer(data, dtype=np.int16))
            pcm = np.asarray(samples, dtype=np.int16).tobytes()
            if not pcm:
                return
        self.frame_seq += 1
        frame = AudioFrame(session_id=self.session_id, seq=self.frame_seq, audio=pcm, sample_rate=BUS_RATE)
        await self._to_bus(self.keys.audio(self.session_id), frame, audio=True)

    async def _on_text(self, text: str) -> None:
        if not self.text_budget.allow():
            raise Closing("too_many_messages",
                          f"More than {self.settings.max_text_messages_per_s:g} messages per second were sent.",
                          POLICY)
        if not self.text_bytes_budget.allow(len(text.encode(errors="surrogatepass"))):
            raise Closing("too_much_text",
                          f"More than {self.settings.max_text_bytes_per_s} bytes of messages per second were sent.",
                          POLICY)
        try:
            msg = codec.decode_text(text, CLIENT_MESSAGES, self.settings.max_json_depth)
        except codec.DecodeError as exc:
            metrics.BAD_MESSAGES.labels("gateway").inc()
            await self._send_error("bad_message", f"That message was not understood: {exc.reason}.")
            return
        msg.session_id = self.session_id
        msg.traceparent = None  # a client never chooses the trace its turn joins: each turn starts its own
        if isinstance(msg, Stop):
            raise ClientStopped
        if isinstance(msg, Start):
            await self._send_error("already_started", "The session has already started.")
        elif isinstance(msg, TextInput):
            await self._on_typed(msg)
        elif isinstance(msg, Interrupt):
            await self._interrupt("client")
        elif isinstance(msg, Configure):
            await self._configure(msg)
        elif isinstance(msg, (PlaybackStarted, PlaybackFinished)):
            await self._to_bus(self.keys.audio(self.session_id), msg.stamp("gateway"))

    async def _on_typed(self, msg: TextInput) -> None:
        text = msg.text.strip()
        if not text:
            await self._send_error("empty_text", "The text message was empty.")
            return
        if len(text) > self.settings.max_text_chars:
            await self._send_error("text_too_long",
                                   f"The text is over {self.settings.max_text_chars} characters; shorten it.")
            return
        # Redis may be failing over to a replica (a few seconds): the text waits for it rather than being lost.
        deadline = time.monotonic() + self.settings.bus_retry_s
        backoff = Backoff(first=0.05, cap=0.5)
        while True:
            try:
                # The root of the turn's trace: the TurnRequest carries this span's context to the orchestrator.
                with tracing.span("gateway.text_turn", msg, kind=tracing.SpanKind.SERVER, chars=len(text)):
                    turn_id = await self.sessions.start_turn(self.session_id, reason="new_turn")
                    tracing.set_attributes(**{tracing.TURN: turn_id})
                    request = TurnRequest(session_id=self.session_id, turn_id=turn_id, user=self.user, text=text,
                                          source="text").stamp("eot").stamp("transcript")
                    await self.bus.enqueue(self.keys.turns, request)
                return
            except REDIS_DOWN:
                if time.monotonic() >= deadline:
                    await self._send_error(
                        "bus_unavailable",
                        "The assistant's message bus is unreachable; your text was not sent. Try again.")
                    return
                await backoff.wait()

    async def _interrupt(self, reason: str) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            await self.sessions.cancel_current(self.session_id, reason)

    async def _configure(self, msg: Configure) -> None:
        if msg.voice and self.voices and msg.voice not in self.voices:
            await self._send_error("unknown_voice", f"Voice {msg.voice!r} is not available.")
            return
        if msg.wake_word is not None or msg.listen_always:
            self.record.wake_word = "" if msg.listen_always else (msg.wake_word or "")
        if msg.voice is not None:
            self.record.voice = msg.voice
        if msg.speech_rate is not None:
            self.record.speech_rate = msg.speech_rate
        with contextlib.suppress(*REDIS_DOWN):
            await self.sessions.save(self.session_id, self.record)
        await self._to_bus(self.keys.audio(self.session_id), msg)

    async def _to_bus(self, stream: str, msg: Message, audio: bool = False) -> None:
        """Write to a session stream; while Redis is down, say so once and drop real-time audio."""
        try:
            await self.bus.add(stream, msg, maxlen=AUDIO_MAXLEN)
            self._bus_down_reported = False
        except REDIS_DOWN:
            if not self._bus_down_reported:
                self._bus_down_reported = True
                await self._send_error("bus_unavailable",
                                       "The assistant's message bus is unreachable; audio is not being heard "
                                       "until it is back.")

    # ------------------------------------------------------------- outbound
    async def _outbound(self) -> None:
        stream = self.keys.out(self.session_id)
        while True:
            try:
                entries = await self.bus.read(stream, self.last_out_id, block_ms=1000, count=200)
            except REDIS_DOWN:
                await asyncio.sleep(0.5)
                continue
            for entry in entries:
                self.last_out_id = entry.id
                msg = entry.message
                if msg is None:
                    log.warning("bad entry on out stream: %s", entry.error, extra={"session": self.session_id})
                    continue
                stream_id = entry.id.decode()
                if isinstance(msg, AudioChunk):
                    for item in await self._order(msg):
                        if isinstance(item, Message):
                            item.stream_id = stream_id  # made by the order: resumable after its chunk
                            self._skip_bytes = 0  # a resuming client counted audio since its last event only
                        await self._send(item)
                elif msg.type not in INTERNAL:
                    msg.stream_id = stream_id
                    self._skip_bytes = 0
                    await self._send_event(msg)

    async def _send(self, item: Message | bytes) -> None:
        if isinstance(item, bytes):
            if self._skip_bytes:  # the resuming client has these already
                skipped = min(self._skip_bytes, len(item))
                self._skip_bytes -= skipped
                item = item[skipped:]
                if not item:
                    return
            # A dropped client is noticed by _inbound (which detaches the session for a resume),
            # not here: a failed send must not end the session as an internal error.
            if await self._deliver(self.ws.send_bytes(item)):
                metrics.FRAMES_OUT.inc()
            return
        if item.type == "audio_start":
            item.stamp("gateway_sent")
            self._observe(item.ts)
            self._audio_out = (item.turn_id, item.traceparent, item.ts["gateway_sent"])
        elif item.type == "audio_end" and self._audio_out is not None and self._audio_out[0] == item.turn_id:
            _, parent, began = self._audio_out
            self._audio_out = None
            tracing.record("gateway.reply_audio", item, began, now(), parent=parent)
        await self._send_event(item)

    async def _send_event(self, msg: Message) -> None:
        if self.ws.client_state != WebSocketState.CONNECTED:
            return
        if await self._deliver(self.ws.send_text(codec.encode_text(msg, trace=False))):
            metrics.EVENTS_OUT.labels(msg.type).inc()

    async def _deliver(self, send: Coroutine[Any, Any, None]) -> bool:
        """Run one send to the client under the send lock; False if it was not sent.

        A client that stops reading (a frozen tab, a stuck process) while its TCP
        connection stays up would hold a send, and with it the session, forever:
        a send that waits past ``send_timeout_s`` marks the client as stalled, and
        the connection ends as if it had dropped (the session waits for a resume).
        """
        if self._stalled.is_set():
            send.close()
            return False
        async with self._send_lock:
            try:
                await asyncio.wait_for(send, self.settings.send_timeout_s)
            except TimeoutError:
                if not self._stalled.is_set():
                    self._stalled.set()
                    metrics.ERRORS.labels("gateway", "client_stalled").inc()
                    log.warning("the client took no data for %.0f s; treating it as gone",
                                self.settings.send_timeout_s, extra={"session": self.session_id})
                return False
            except (RuntimeError, WebSocketDisconnect):
                return False
        return True

    async def _watch_stall(self) -> None:
        await self._stalled.wait()
        raise ClientStalled

    async def _send_error(self, code: str, message: str) -> None:
        metrics.ERRORS.labels("gateway", code).inc()
        await self._send_event(Error(session_id=self.session_id, code=code, message=message))

    @staticmethod
    def _observe(ts: dict[str, float]) -> None:
        origin = ts.get("speech_end") or ts.get("eot")
        if origin is None:
            return
        for stage, at in ts.items():
            if at >= origin:
                metrics.STAGE_LATENCY.labels(stage).observe(at - origin)

    # ------------------------------------------------------------ keepalive
    async def _keepalive(self) -> None:
        """Refresh the registration; this also restores it after a Redis restart."""
        while True:
            await asyncio.sleep(2.0)
            try:
                await self.sessions.refresh_slot(self.user, self.connection_id)
                attached = await self.sessions.attached_connection(self.session_id)
                if attached and attached != self.connection_id:
                    raise TakenOver
                if not await self.sessions.save(self.session_id, self.record):
                    log.warning("session state was lost (Redis restarted?); restored",
                                extra={"session": self.session_id})
                    await self.sessions.announce(self.session_id)
            except REDIS_DOWN:
                continue


async def close_with_error(ws: WebSocket, err: Closing, session_id: str = "") -> None:
    """Send an ``error`` event, then close with the error's code and a short reason."""
    metrics.ERRORS.labels("gateway", err.error).inc()
    if ws.client_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(Exception):
        await ws.send_text(codec.encode_text(Error(session_id=session_id, code=err.error, message=err.message)))
        await ws.close(err.close_code, reason=close_reason(err.message))


#: RFC 6455: a close frame's reason is at most 123 bytes of UTF-8.
MAX_CLOSE_REASON_BYTES = 123


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame: 123 bytes of UTF-8, never a split character."""
    return text.encode(errors="replace")[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


def _after_last_event(outputs: list[Message | bytes]) -> list[bytes]:
    """The audio released after the last JSON event of ``outputs``."""
    tail: list[bytes] = []
    for item in outputs:
        tail = [] if isinstance(item, Message) else [*tail, item]
    return tail
