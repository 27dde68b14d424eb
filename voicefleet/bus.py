"""The bus client: typed messages over Redis, used by every service.

One :class:`Bus` per process wraps an asyncio Redis connection pool. It knows
the primitive behind each kind of message (see :mod:`voicefleet.keys`), so
services talk in messages, never in Redis commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import codec, tracing
from .keys import Keys
from .messages import Cancel, Error, Message, ToolCall, ToolResult
from .settings import BusSettings

log = logging.getLogger(__name__)

#: Errors that mean "Redis is unreachable right now": retry with backoff.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

AUDIO_MAXLEN = 3000  # ~96 s of 32 ms frames per session
SESSION_TTL_S = 3600  # session state outlives a dropped connection this long
CANCEL_TTL_S = 600


def instance_name(service: str) -> str:
    """A unique name for this process: consumer name and health key suffix."""
    return f"{service}-{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"


@dataclass
class Entry:
    """One stream entry: its id and the decoded message (or the decode error)."""

    id: bytes
    message: Message | None
    error: codec.DecodeError | None = None


class Backoff:
    """Exponential backoff with a cap, reset after success."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self.delay = first, cap, first

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.cap, self.delay * 2)

    def reset(self) -> None:
        self.delay = self.first


class Bus:
    """Typed access to the fleet's Redis."""

    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings
        self.keys: Keys = settings.keys
        self.redis: aioredis.Redis = connect(settings)

    @property
    def where(self) -> str:
        """Where Redis is, for log lines (never the password)."""
        if self.settings.redis_sentinels:
            return f"Sentinel {self.settings.redis_sentinels} (primary {self.settings.redis_sentinel_master!r})"
        url = parse_url(self.settings.redis_url)
        return f"{url.get('host', url.get('path', '?'))}:{url.get('port', '')}"

    async def close(self) -> None:
        await self.redis.aclose()

    async def replicated(self) -> None:
        """With ``VF_REDIS_WAIT_REPLICAS``, wait until that many replicas hold every write made so far.

        Redis replicates asynchronously: a primary that dies loses what its
        replicas had not received yet. Call this before telling anyone that a
        write is done. WAIT counts the writes of its own connection, so a small
        write on the same connection comes first: every write the primary
        executed before it is then covered. After the timeout the caller goes
        on (a fleet without a replica still answers) and a warning is logged.
        """
        want = self.settings.redis_wait_replicas
        if not want:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.replication_mark, b"1", px=60_000)
        pipe.wait(want, self.settings.redis_wait_timeout_ms)
        got = (await pipe.execute())[-1]
        if int(got) < want:
            log.warning("only %s of %d replicas confirmed the writes within %d ms",
                        got, want, self.settings.redis_wait_timeout_ms)

    async def wait_until_up(self, give_up_after: float | None = None) -> None:
        """Ping until Redis answers, with backoff; log once while waiting."""
        backoff = Backoff()
        started = time.monotonic()
        warned = False
        while True:
            try:
                await self.redis.ping()  # type: ignore[misc]  # redis-py 7 types async replies as X | Awaitable[X]
                if warned:
                    log.info("Redis is reachable again at %s", self.where)
                return
            except REDIS_DOWN as exc:
                if give_up_after is not None and time.monotonic() - started > give_up_after:
                    raise
                if not warned:
                    log.warning("Redis not reachable at %s (%s); retrying", self.where, exc)
                    warned = True
                await backoff.wait()

    # ------------------------------------------------------------------
    # streams: writing
    # ------------------------------------------------------------------
    async def add(self, stream: str, msg: Message, maxlen: int | None = None, keep_s: float | None = None) -> bytes:
        """Append ``msg``; trim the stream to about ``maxlen`` entries, or to its last ``keep_s`` seconds."""
        tracing.inject(msg)  # sent inside a span: the receiver's span continues its trace
        fields: Any = codec.encode(msg)
        minid = None if keep_s is None else f"{int((time.time() - keep_s) * 1000)}-0"
        result: Any = await self.redis.xadd(stream, fields, maxlen=maxlen, minid=minid, approximate=True)
        return bytes(result)

    async def emit(self, msg: Message) -> bytes:
        """Send an event (or reply audio) to the client of ``msg.session_id``.

        Rides out a short outage (see :meth:`_through_outage`): a reply cut in
        the middle by a Redis failover goes on once the replica is promoted.
        """
        keep = self.settings.out_stream_keep_s
        return await self._through_outage(lambda: self.add(self.keys.out(msg.session_id), msg, keep_s=keep))

    async def _through_outage(self, write: Callable[[], Awaitable[bytes]]) -> bytes:
        """Retry a write that carries work's results while Redis is unreachable, for ``redis_retry_s``.

        A Sentinel failover leaves no primary for a few seconds; giving up at
        once would drop a sentence's audio or a finished transcript that the
        rest of the turn is waiting for. After ``redis_retry_s`` the error is
        raised as before.
        """
        deadline = time.monotonic() + self.settings.redis_retry_s
        backoff = Backoff(first=0.05, cap=0.5)
        while True:
            try:
                return await write()
            except REDIS_DOWN:
                if time.monotonic() >= deadline:
                    raise
                await backoff.wait()

    async def emit_error(self, session_id: str, code: str, message: str, turn_id: str = "") -> None:
        if not session_id:
            return
        try:
            await self.emit(Error(session_id=session_id, turn_id=turn_id, code=code, message=message))
        except REDIS_DOWN:
            log.warning("could not report error %s to session %s: Redis down", code, session_id)

    async def enqueue(self, stream: str, msg: Message) -> bytes:
        """Add must-not-lose work to a stream read by a consumer group.

        The stream is trimmed (approximately) to ``work_stream_maxlen`` entries:
        acked work is history nobody reads again, and a stream that only grows
        ends in Redis running out of memory.
        """
        return await self._through_outage(lambda: self.add(stream, msg, maxlen=self.settings.work_stream_maxlen))

    # ------------------------------------------------------------------
    # streams: reading without a group (session streams)
    # ------------------------------------------------------------------
    async def read(
        self, stream: str, last_id: bytes | str, block_ms: int = 1000, count: int = 100
    ) -> list[Entry]:
        """Entries after ``last_id``, waiting up to ``block_ms`` for the first."""
        reply: Any = await self.redis.xread({stream: last_id}, count=count, block=block_ms)
        return [self._entry(entry_id, fields) for _, entries in reply or [] for entry_id, fields in entries]

    async def read_streams(
        self, last_ids: dict[str, bytes], block_ms: int = 1000, count: int = 100
    ) -> dict[str, list[Entry]]:
        """Entries after each stream's last id, in one XREAD (waits up to ``block_ms`` for the first)."""
        streams: dict[Any, Any] = dict(last_ids)
        reply: Any = await self.redis.xread(streams, count=count, block=block_ms)
        return {
            _text(stream): [self._entry(entry_id, fields) for entry_id, fields in entries]
            for stream, entries in reply or []
        }

    async def range(self, stream: str, first: bytes | str, last: bytes | str, count: int = 500) -> list[Entry]:
        """Entries from ``first`` to ``last`` inclusive (``-``/``+``: the ends; ``(id``: exclusive)."""
        reply: Any = await self.redis.xrange(stream, min=first, max=last, count=count)
        return [self._entry(entry_id, fields) for entry_id, fields in reply or []]

    async def last_id(self, stream: str) -> bytes:
        """The id of the stream's newest entry (``0-0`` when it is empty or missing)."""
        reply: Any = await self.redis.xrevrange(stream, count=1)
        return bytes(reply[0][0]) if reply else b"0-0"

    @staticmethod
    def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Entry:
        try:
            return Entry(entry_id, codec.decode(fields))
        except codec.DecodeError as exc:
            return Entry(entry_id, None, exc)

    # ------------------------------------------------------------------
    # streams: consumer groups (work)
    # ------------------------------------------------------------------
    async def ensure_group(self, stream: str, group: str) -> None:
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_group(
        self, stream: str, group: str, consumer: str, count: int, block_ms: int = 1000
    ) -> list[Entry]:
        """New entries for this consumer; recreates the group if Redis lost it."""
        try:
            reply: Any = await self.redis.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer group %s on %s is gone (Redis restarted?); recreating", group, stream)
            await self.ensure_group(stream, group)
            return []
        return [self._entry(entry_id, fields) for _, entries in reply or [] for entry_id, fields in entries]

    async def ack(self, stream: str, group: str, entry_id: bytes) -> None:
        await self.redis.xack(stream, group, entry_id)

    async def reclaim(
        self,
        stream: str,
        group: str,
        consumer: str,
        alive: set[str],
        max_deliveries: int = 3,
        min_idle_ms: int | None = None,
    ) -> tuple[list[Entry], list[Entry]]:
        """Claim entries held by consumers that are no longer alive, and (with ``min_idle_ms``) entries
        any consumer has held that long without acking (a handler that hung on a live worker).

        Returns ``(claimed, poisoned)``: poisoned entries were delivered
        ``max_deliveries`` times already (each time their worker died or hung),
        so they are acked and handed back for an error report instead of
        killing another worker.
        """
        try:
            summary: Any = await self.redis.xpending(stream, group)
        except ResponseError:
            return [], []
        dead = [
            c["name"] for c in summary.get("consumers", []) if _text(c["name"]) not in alive
        ]
        claimed: list[Entry] = []
        poisoned: list[Entry] = []
        for name in dead:
            pending: Any = await self.redis.xpending_range(stream, group, "-", "+", 100, consumername=name)
            if not pending:
                await self.redis.xgroup_delconsumer(stream, group, name)
                continue
            await self._claim(stream, group, consumer, pending, 0, max_deliveries, claimed, poisoned)
            log.warning("reclaimed %d entries of %s from dead consumer %s", len(pending), stream, _text(name))
        if min_idle_ms is not None and summary.get("pending"):
            stuck: Any = await self.redis.xpending_range(stream, group, "-", "+", 100, idle=min_idle_ms)
            if stuck:
                # XCLAIM's own min-idle check makes this safe against another worker claiming the same entry.
                got = await self._claim(stream, group, consumer, stuck, min_idle_ms, max_deliveries, claimed, poisoned)
                if got:
                    log.warning("reclaimed %d entries of %s unacked for over %d ms", got, stream, min_idle_ms)
        return claimed, poisoned

    async def keep_claimed(self, stream: str, group: str, consumer: str, ids: list[bytes]) -> None:
        """Reset the idle time of entries ``consumer`` is still working on, so nobody reclaims them as hung.

        XCLAIM with JUSTID neither counts a delivery nor returns the entries;
        an id already acked is skipped by Redis.
        """
        if ids:
            await self.redis.xclaim(stream, group, consumer, 0, list[Any](ids), justid=True)

    async def _claim(
        self,
        stream: str,
        group: str,
        consumer: str,
        pending: list[dict[str, Any]],
        min_idle_ms: int,
        max_deliveries: int,
        claimed: list[Entry],
        poisoned: list[Entry],
    ) -> int:
        """XCLAIM ``pending`` for ``consumer``; sorts them into claimed and poisoned, returns how many."""
        ids = [p["message_id"] for p in pending]
        deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
        entries: Any = await self.redis.xclaim(stream, group, consumer, min_idle_ms, ids)
        for entry_id, fields in entries:
            if fields is None:  # trimmed away meanwhile
                await self.ack(stream, group, entry_id)
                continue
            entry = self._entry(entry_id, fields)
            if deliveries.get(entry_id, 0) >= max_deliveries:
                await self.ack(stream, group, entry_id)
                poisoned.append(entry)
            else:
                claimed.append(entry)
        return len(entries)

    # ------------------------------------------------------------------
    # cancel (pub/sub + marker key)
    # ------------------------------------------------------------------
    async def cancel(self, session_id: str, turn_id: str, reason: str = "barge_in") -> None:
        msg = Cancel(session_id=session_id, turn_id=turn_id, reason=reason).stamp("cancel")
        pipe = self.redis.pipeline(transaction=False)
        # The first reason stays: a barge-in's turn is cancelled again as superseded by the next turn.
        pipe.set(self.keys.cancelled(session_id, turn_id), reason, ex=CANCEL_TTL_S, nx=True)
        pipe.publish(self.keys.cancel_channel, codec.encode_text(msg))
        await pipe.execute()

    async def is_cancelled(self, session_id: str, turn_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.cancelled(session_id, turn_id)))

    async def cancel_reason(self, session_id: str, turn_id: str) -> str:
        """Why the turn was cancelled ("" when it was not)."""
        value = await self.redis.get(self.keys.cancelled(session_id, turn_id))
        return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")

    async def cancels(self) -> AsyncIterator[Cancel]:
        """Every cancel broadcast from now on; resubscribes after a Redis restart."""
        backoff = Backoff()
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.cancel_channel)
                backoff.reset()
                async for item in pubsub.listen():
                    try:
                        msg = codec.decode_text(item["data"], (Cancel,))
                    except codec.DecodeError as exc:
                        log.warning("ignoring bad cancel broadcast: %s", exc)
                        continue
                    assert isinstance(msg, Cancel)
                    yield msg
            except REDIS_DOWN as exc:
                log.warning("cancel subscription lost (%s); resubscribing", exc)
                await backoff.wait()
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except REDIS_DOWN:
                    pass

    # ------------------------------------------------------------------
    # request / reply (tool calls, HTTP TTS)
    # ------------------------------------------------------------------
    async def reply(self, request_id: str, msg: Message, ttl_s: int = 120) -> None:
        """Push one reply message for ``request_id`` (several may follow in order)."""
        key = self.keys.reply(request_id)
        tracing.inject(msg)
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(key, json.dumps({"h": msg.header()}).encode() + b"\n" + codec.audio_of(msg))
        pipe.expire(key, ttl_s)
        await pipe.execute()

    async def wait_reply(self, request_id: str, timeout_s: float) -> Message | None:
        """The next reply for ``request_id``, or None after ``timeout_s``."""
        item: Any = await self.redis.blpop([self.keys.reply(request_id)], timeout=max(timeout_s, 0.01))  # type: ignore[misc]  # redis-py 7 types async replies as X | Awaitable[X]
        if item is None:
            return None
        raw: bytes = item[1]
        header, _, audio = raw.partition(b"\n")
        return codec.from_header(json.loads(header)["h"], audio)

    async def call_tool(self, call: ToolCall, timeout_s: float) -> ToolResult | None:
        """Run ``call`` through the tools worker; None after ``timeout_s``.

        A call not answered in time is withdrawn from the stream (XDEL), so that a
        tools worker starting later does not, say, set a timer the user has long
        given up on. The orchestrator and the gateway's MCP server both call here.
        """
        entry_id = await self.enqueue(self.keys.tools, call)
        reply = await self.wait_reply(call.call_id, timeout_s)
        if isinstance(reply, ToolResult):
            return reply
        try:
            await self.redis.xdel(self.keys.tools, entry_id)
        except REDIS_DOWN:
            pass
        return None

    # ------------------------------------------------------------------
    # health
    # ------------------------------------------------------------------
    async def beat(self, service: str, instance: str, status: dict[str, Any]) -> None:
        ttl_ms = int(self.settings.health_ttl_s * 1000)
        await self.redis.set(
            self.keys.health(service, instance), json.dumps(status).encode(), px=ttl_ms
        )

    async def health(self) -> dict[str, list[dict[str, Any]]]:
        """Live worker processes by service, from their health keys."""
        services: dict[str, list[dict[str, Any]]] = {}
        async for key in self.redis.scan_iter(match=self.keys.health_pattern, count=200):
            raw = await self.redis.get(key)
            if raw is None:
                continue
            service, instance = _text(key).rsplit(":", 2)[-2:]
            status = json.loads(raw)
            status["instance"] = instance
            services.setdefault(service, []).append(status)
        return services

    async def queue_depths(self) -> list[tuple[str, str, int | None, int]]:
        """``(stream, group, lag, pending)`` for each consumer group of the work streams (``turns``,
        ``speak``, ``tools``); lag is None when Redis cannot tell (entries deleted mid-stream)."""
        depths = []
        for name, stream in (("turns", self.keys.turns), ("speak", self.keys.speak), ("tools", self.keys.tools)):
            try:
                groups: Any = await self.redis.xinfo_groups(stream)
            except ResponseError:  # the stream does not exist yet
                continue
            for group in groups:
                lag = group.get("lag")
                depths.append((name, _text(group["name"]), None if lag is None else int(lag), int(group["pending"])))
        return depths

    async def alive_instances(self, service: str) -> set[str]:
        pattern = self.keys.health(service, "*")
        return {_text(k).rsplit(":", 1)[-1] async for k in self.redis.scan_iter(match=pattern, count=200)}


def connect(settings: BusSettings) -> aioredis.Redis:
    """A client for ``VF_REDIS_URL``, or for the primary that the Sentinels name (``VF_REDIS_SENTINELS``).

    Through Sentinel every new connection asks a Sentinel where the primary is
    now, and a connection to a primary that was demoted is dropped (READONLY);
    either way the caller sees a connection error, retries with backoff, and
    lands on the new primary once it is promoted.
    """
    options: dict[str, Any] = {"decode_responses": False, "socket_connect_timeout": 2.0, "health_check_interval": 10}
    if not settings.redis_sentinels:
        return aioredis.Redis.from_url(settings.redis_url, **options)
    url = parse_url(settings.redis_url)
    for name in ("db", "username", "password"):
        if name in url:
            options[name] = url[name]
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves Sentinel's __init__ unannotated
        settings.sentinel_addresses,
        sentinel_kwargs={"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
    )
    client: aioredis.Redis = sentinel.master_for(
        settings.redis_sentinel_master, redis_class=aioredis.Redis, **options
    )
    return client


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

