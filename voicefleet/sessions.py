"""The one owner of session and turn state shared between services.

A session is opened by the gateway and read by every worker. Everything the
fleet shares about it goes through :class:`Sessions`:

* the **record** (:class:`SessionRecord`, hash ``keys.session``): who the user
  is, the client's sample rates, wake word, voice, speech rate, language, and
  which gateway connection is attached now (empty while the client is away
  and may still resume);
* the **current turn** (``keys.current_turn``): turn ids are made here only,
  and the supersede rule lives here only: *a session answers one turn at a
  time; starting a turn cancels the one before it*;
* the **open sessions** (sorted sets ``keys.sessions`` and
  ``keys.user_sessions``, scored by the last time a gateway saw them);
* **pending notices** for a user with no open session (a timer that rang);
* **announcements** on ``keys.sessions_channel``: a session opened, closed or
  came back, so owners wake up at once instead of polling.

What stays raw Redis in a service is that service's private state only (the
STT worker's lease and audio position, the orchestrator's turn progress...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, fields
from typing import Any

from . import codec
from .audio import BUS_RATE
from .bus import REDIS_DOWN, SESSION_TTL_S, Backoff, Bus
from .messages import Message, Notice, SessionEnded, SessionStarted, new_id

log = logging.getLogger(__name__)

#: A gateway that stopped refreshing a session this long ago has died: the session no longer counts as open.
STALE_AFTER_S = 30.0
#: Keys of a closed session linger this long (late readers, a last look in tests).
CLOSED_TTL_S = 60
PENDING_MAX = 20
PENDING_TTL_S = 7 * 86400

#: Atomic slot reservation: forget stale slots, then take one if fewer than the limit are held.
#: KEYS[1] slots zset; ARGV: member, now, stale-before, limit, ttl. Returns 1 when reserved.
_RESERVE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


@dataclass
class SessionRecord:
    """What the fleet knows about one session (hash ``keys.session``)."""

    user: str = ""
    #: The client's microphone rate; bus audio is always :data:`voicefleet.audio.BUS_RATE`.
    client_sample_rate: int = BUS_RATE
    #: The rate the client wants reply audio at (the TTS worker makes it at this rate).
    output_sample_rate: int = BUS_RATE
    wake_word: str = ""  # "" = always listening
    voice: str = ""  # "" = the TTS worker's default
    speech_rate: float = 1.0
    language: str = ""  # "" = the STT worker's default
    #: The client cancels its own echo (``Start.echo_cancelled``): the STT worker does not.
    echo_cancelled: bool = False
    #: Only the wake word is wanted (a Wyoming ``wake`` client): no speech events, no transcripts, no turns.
    wake_only: bool = False
    created: float = 0.0
    #: The gateway connection attached now; "" while the client is away (the session may be resumed).
    connection: str = ""
    #: When the client went away (epoch seconds; 0 while attached): names one absence, for its grace period.
    away_since: float = 0.0

    @property
    def sample_rate(self) -> int:
        """The rate of the session's bus audio."""
        return BUS_RATE

    def to_hash(self) -> dict[str, str]:
        # "sample_rate" is written for readers that predate the record (benchmarks, old workers).
        # Booleans as 0/1: from_hash parses numbers.
        fields_ = {k: str(int(v)) if isinstance(v, bool) else str(v) for k, v in asdict(self).items()}
        return {**fields_, "sample_rate": str(BUS_RATE)}

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> SessionRecord:
        """The record in a Redis hash; missing or malformed fields keep their defaults, unknown ones are ignored."""
        text = {_text(k): _text(v) for k, v in raw.items()}
        record = cls()
        for f in fields(cls):
            value = text.get(f.name)
            if value is None:
                continue
            default = getattr(record, f.name)
            try:
                parsed: Any = type(default)(float(value)) if isinstance(default, (int, float)) else value
            except ValueError:
                continue
            if isinstance(parsed, (int, float)) and parsed <= 0 and f.name not in ("created", "away_since"):
                continue
            setattr(record, f.name, parsed)
        return record


class Sessions:
    """Session and turn state, for every service (one per process, around its :class:`Bus`)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.keys = bus.keys

    # ------------------------------------------------------------ records
    async def load(self, session_id: str) -> SessionRecord | None:
        """The session's record, or None when it is closed or unknown."""
        raw = await self.bus.redis.hgetall(self.keys.session(session_id))  # type: ignore[misc]  # redis-py 7 types async replies as X | Awaitable[X]
        return SessionRecord.from_hash(raw) if raw else None

    async def for_turn(self, session_id: str, user: str = "") -> SessionRecord:
        """The record a turn is answered with: the defaults once the session is gone, the turn's user first."""
        record = await self.load(session_id) or SessionRecord()
        record.user = user or record.user
        return record

    async def save(self, session_id: str, record: SessionRecord, attached: bool = True) -> bool:
        """Write the record and refresh the session's registration; True when it existed before.

        ``attached``: a client is connected now, so the session counts among the
        user's open connections. The gateway calls this periodically, which also
        restores a session after a Redis restart.
        """
        now = time.time()
        key = self.keys.session(session_id)
        pipe = self.bus.redis.pipeline(transaction=False)
        pipe.exists(key)
        pipe.hset(key, mapping=record.to_hash())
        pipe.expire(key, SESSION_TTL_S)
        # Every per-session key lives as long as the session is refreshed, and no longer: after a
        # gateway crash nothing refreshes them, and they expire instead of staying forever.
        for per_session in (self.keys.audio(session_id), self.keys.out(session_id),
                            self.keys.current_turn(session_id)):
            pipe.expire(per_session, SESSION_TTL_S)
        pipe.zadd(self.keys.sessions, {session_id: now})
        # Entries nobody refreshed for as long as a record lives are sessions of a gateway that died.
        pipe.zremrangebyscore(self.keys.sessions, "-inf", now - SESSION_TTL_S)
        if attached:
            pipe.zadd(self.keys.user_sessions(record.user), {session_id: now})
        else:
            pipe.zrem(self.keys.user_sessions(record.user), session_id)
        pipe.expire(self.keys.user_sessions(record.user), SESSION_TTL_S)
        existed, *_ = await pipe.execute()
        return bool(existed)

    async def open(self, session_id: str, record: SessionRecord) -> None:
        """Register a new session, tell its audio stream's reader who it is, and announce it."""
        await self.save(session_id, record)
        await self.bus.add(
            self.keys.audio(session_id),
            SessionStarted(session_id=session_id, user=record.user, wake_word=record.wake_word or None),
        )
        await self.announce(session_id)

    async def attach(self, session_id: str, user: str, connection: str, wait_s: float = 0.0) -> SessionRecord | None:
        """Attach ``connection`` to an existing session of ``user`` (a resume).

        A session still attached to another connection is waited for up to
        ``wait_s`` (that connection's gateway may be about to notice the drop).
        Then, if that gateway is alive, the session is taken over anyway: after
        a real network drop no reset arrives and the old connection can look
        alive for minutes; it sees it is no longer attached and leaves. A
        session whose gateway died is not resumed (None: nobody held its grace
        period), nor one that is gone. Raises :class:`PermissionError` when the
        session belongs to someone else.
        """
        deadline = time.monotonic() + wait_s
        while True:
            record = await self.load(session_id)
            if record is None:
                return None
            if record.user != user:
                raise PermissionError(session_id)
            if not record.connection:
                break
            if time.monotonic() >= deadline:
                if not await self._gateway_alive(record.connection):
                    return None
                log.info("taking the session over from %s", record.connection, extra={"session": session_id})
                break
            await asyncio.sleep(0.05)
        record.connection, record.away_since = connection, 0.0
        await self.save(session_id, record)
        await self.announce(session_id)
        return record

    async def _gateway_alive(self, connection: str) -> bool:
        """Whether the gateway process serving ``connection`` ("<gateway instance>/<id>") still runs."""
        instance, sep, _ = connection.partition("/")
        return bool(sep) and instance in await self.bus.alive_instances("gateway")

    async def detach(self, session_id: str, record: SessionRecord) -> None:
        """The client went away but may resume: keep the session, stop counting it as connected."""
        record.connection, record.away_since = "", time.time()
        await self.save(session_id, record, attached=False)

    async def attached_connection(self, session_id: str) -> str | None:
        """The connection attached to the session now ("" while away), None once the session is gone."""
        value = await self.bus.redis.hget(self.keys.session(session_id), "connection")  # type: ignore[misc]  # redis-py 7 types async replies as X | Awaitable[X]
        if value is None:
            return None if not await self.bus.redis.exists(self.keys.session(session_id)) else ""
        return _text(value)

    async def close(self, session_id: str, user: str, reason: str) -> None:
        """End the session everywhere: cancel its turn, forget it, tell its owners."""
        await self.cancel_current(session_id, "session_closed")
        pipe = self.bus.redis.pipeline(transaction=False)
        pipe.zrem(self.keys.sessions, session_id)
        pipe.zrem(self.keys.user_sessions(user), session_id)
        await pipe.execute()
        await self.bus.add(self.keys.audio(session_id), SessionEnded(session_id=session_id, reason=reason))
        await self.announce(session_id)
        await self._expire_all(session_id, CLOSED_TTL_S)

    async def end_audio(self, session_id: str, reason: str) -> None:
        """No more audio will come: the STT owner handles every frame before this mark, then lets the session go.

        The session stays registered (the owner is not pulled away mid-audio, as :meth:`close` would);
        :meth:`close` it afterwards.
        """
        await self.bus.add(self.keys.audio(session_id), SessionEnded(session_id=session_id, reason=reason))

    async def forget(self, session_id: str, cancel: bool = False) -> None:
        """Let a session no client attaches to (one HTTP chat turn) go: its keys expire soon; ``cancel`` its turn."""
        if cancel:
            await self.cancel_current(session_id, "request_ended")
        await self._expire_all(session_id, CLOSED_TTL_S)

    async def _expire_all(self, session_id: str, ttl_s: int) -> None:
        """Every key of the session (record, streams, history, turn markers and progress) gone within ``ttl_s``.

        Found by SCAN, since the per-turn keys cannot be listed otherwise; LT only
        shortens, so a key meant to go sooner keeps its own TTL.
        """
        pipe = self.bus.redis.pipeline(transaction=False)
        async for key in self.bus.redis.scan_iter(match=self.keys.session_pattern(session_id), count=500):
            pipe.expire(key, ttl_s, lt=True)
        await pipe.execute()

    # ------------------------------------------------------- open sessions
    async def user_sessions(self, user: str) -> list[str]:
        """The user's sessions with a client connected now."""
        return [_text(s) for s in await self.bus.redis.zrange(self.keys.user_sessions(user), 0, -1)]

    async def connected_count(self, user: str) -> int:
        """How many sessions the user has connected now (those of dead gateways are forgotten first)."""
        key = self.keys.user_sessions(user)
        await self.bus.redis.zremrangebyscore(key, "-inf", time.time() - STALE_AFTER_S)
        return int(await self.bus.redis.zcard(key))

    async def reserve_slot(self, user: str, connection: str, limit: int) -> bool:
        """Take one of the user's ``limit`` connection slots for ``connection``; False when all are held.

        Atomic (one Lua script), so simultaneous handshakes cannot all pass a
        count that each read before the others registered. Slots not refreshed
        for :data:`STALE_AFTER_S` (their gateway died) are freed first.
        """
        now = time.time()
        reserved = await self.bus.redis.eval(  # type: ignore[misc]  # redis-py 7 types async replies as X | Awaitable[X]
            _RESERVE_SLOT, 1, self.keys.user_slots(user), connection, now, now - STALE_AFTER_S, limit,
            SESSION_TTL_S,
        )
        return bool(reserved)

    async def refresh_slot(self, user: str, connection: str) -> None:
        """Keep a held slot from going stale (called by the connection's keepalive)."""
        pipe = self.bus.redis.pipeline(transaction=False)
        pipe.zadd(self.keys.user_slots(user), {connection: time.time()}, xx=True)
        pipe.expire(self.keys.user_slots(user), SESSION_TTL_S)
        await pipe.execute()

    async def release_slot(self, user: str, connection: str) -> None:
        """Give the connection's slot back (the socket closed)."""
        await self.bus.redis.zrem(self.keys.user_slots(user), connection)

    async def open_since(self, seen_after: float) -> list[str]:
        """Open sessions a gateway refreshed after ``seen_after`` (epoch seconds)."""
        return [_text(s) for s in await self.bus.redis.zrangebyscore(self.keys.sessions, seen_after, "+inf")]

    async def last_seen(self, session_id: str) -> float | None:
        """When a gateway last refreshed the session; None once it is closed."""
        score = await self.bus.redis.zscore(self.keys.sessions, session_id)
        return None if score is None else float(score)

    async def is_open(self, session_id: str) -> bool:
        pipe = self.bus.redis.pipeline(transaction=False)
        pipe.exists(self.keys.session(session_id))
        pipe.zscore(self.keys.sessions, session_id)
        exists, score = await pipe.execute()
        return bool(exists) and score is not None

    # ------------------------------------------------------- announcements
    async def announce(self, session_id: str) -> None:
        await self.bus.redis.publish(self.keys.sessions_channel, session_id)

    async def announcements(self) -> AsyncIterator[str]:
        """Session ids announced from now on; resubscribes after a Redis restart."""
        backoff = Backoff()
        while True:
            pubsub = self.bus.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.sessions_channel)
                backoff.reset()
                async for item in pubsub.listen():
                    sid = _text(item.get("data") or b"").strip()
                    if sid:
                        yield sid
            except REDIS_DOWN as exc:
                log.warning("sessions channel lost (%s); resubscribing", exc)
                await backoff.wait()
            finally:
                with contextlib.suppress(*REDIS_DOWN):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    # --------------------------------------------------------------- turns
    async def start_turn(self, session_id: str, turn_id: str = "", reason: str = "superseded") -> str:
        """Make ``turn_id`` (a new id when empty) the session's current turn; cancel the one before it.

        The supersede rule, in one place: a session answers one turn at a time,
        so whoever starts a turn (the gateway for typed text, the STT worker for
        speech, the orchestrator for a turn that reached it another way) calls
        this, and the previous turn stops everywhere (LLM, TTS, the client's
        playback). Calling it again with the same id changes nothing.
        """
        turn_id = turn_id or new_id()
        previous = await self.bus.redis.set(
            self.keys.current_turn(session_id), turn_id, ex=SESSION_TTL_S, get=True
        )
        if previous and _text(previous) != turn_id:
            await self.bus.cancel(session_id, _text(previous), reason)
        return turn_id

    async def current_turn(self, session_id: str) -> str:
        """The turn the session is answering now ("" when none)."""
        value = await self.bus.redis.get(self.keys.current_turn(session_id))
        return _text(value) if value else ""

    async def cancel_current(self, session_id: str, reason: str) -> str:
        """Cancel the session's current turn (barge-in, interrupt, close); its id, or "" when none."""
        current = await self.current_turn(session_id)
        if current:
            await self.bus.cancel(session_id, current, reason)
        return current

    # ----------------------------------------------------- pending notices
    async def keep_notice(self, user: str, notice: Notice) -> None:
        """Keep a notice for a user with no connected session; it is delivered when one opens."""
        key = self.keys.pending_notices(user)
        pipe = self.bus.redis.pipeline(transaction=True)
        pipe.rpush(key, json.dumps(notice.header()))
        pipe.ltrim(key, -PENDING_MAX, -1)
        pipe.expire(key, PENDING_TTL_S)
        await pipe.execute()

    async def take_notices(self, user: str) -> list[Message]:
        """The user's kept notices, oldest first, removed from Redis."""
        key = self.keys.pending_notices(user)
        pipe = self.bus.redis.pipeline(transaction=True)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        raw, _ = await pipe.execute()
        notices: list[Message] = []
        for item in raw:
            try:
                notices.append(codec.decode_text(item))
            except codec.DecodeError as exc:
                log.warning("dropping a bad pending notice: %s", exc)
        return notices


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
