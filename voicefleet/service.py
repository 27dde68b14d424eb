"""The base every service process runs on, the gateway included.

A :class:`Service` connects to Redis (retrying with backoff), loads its models
in :meth:`Service.setup` *before* it reports ready, refreshes a health key with
a TTL, listens to the fleet's cancels once per process (handing each to
:meth:`Service.on_cancel`), runs its loops, survives Redis restarts and bad
messages, and stops cleanly on SIGTERM or SIGINT: it stops taking work, gives
the work in progress ``drain_s`` to finish (still beating, so nobody takes it
over), then leaves what is left to other workers. A process with a server of
its own (the gateway under uvicorn) calls :meth:`Service.start` and
:meth:`Service.shutdown` itself instead of :meth:`Service.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import metrics, tracing
from .bus import REDIS_DOWN, Backoff, Bus, Entry, instance_name
from .constraints import exit_on_conflict
from .messages import Cancel, Message
from .settings import ServiceSettings

log = logging.getLogger(__name__)


class Service:
    """Base class: override :meth:`setup`, :meth:`loops` and maybe :meth:`status`."""

    #: Service kind, used in health keys and consumer names ("stt", "llm", ...).
    name = "service"

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.bus = Bus(settings.bus)
        self.keys = self.bus.keys
        self.instance = instance_name(self.name)
        self.ready = False
        self.draining = False
        self.started_at = time.time()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._workers: list[asyncio.Task[Any]] = []
        #: (stream, group) -> entry id -> when a handler here started on it.
        self._working: dict[tuple[str, str], dict[bytes, float]] = {}
        #: The service's own loops (stopped first on shutdown), apart from the heartbeat and cancels.
        self._loops: list[asyncio.Task[Any]] = []
        #: Work items being handled now (waited for on shutdown, up to ``drain_s``).
        self._in_flight: set[asyncio.Task[Any]] = set()

    # ---- to override -------------------------------------------------
    async def setup(self) -> None:
        """Load models (off the event loop) before the service reports ready."""

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        """The service's long-running loops."""
        return []

    def status(self) -> dict[str, Any]:
        """Extra fields for the health key."""
        return {}

    async def teardown(self) -> None:
        """Release resources after the loops stopped."""

    async def on_cancel(self, cancel: Cancel) -> None:
        """A turn (or, with an empty ``turn_id``, a whole session) was cancelled somewhere in the fleet.

        Called for every cancel broadcast, from the one subscription of this
        process; a service that stops work on cancel overrides it.
        """

    # ---- lifecycle ----------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        metrics.serve(self.settings.metrics_port)
        workers = await self.start()
        stop_waiter = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait([stop_waiter, *workers], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_waiter and not task.cancelled() and task.exception():
                log.error("loop %s crashed", task.get_name(), exc_info=task.exception())
        stop_waiter.cancel()
        await self.shutdown()

    async def start(self, wait_for_redis: bool = True) -> list[asyncio.Task[Any]]:
        """Connect, set up, and start the heartbeat, the cancel subscription and the loops."""
        started = time.monotonic()
        if wait_for_redis:
            await self.bus.wait_until_up()
        await self.setup()
        self.ready = True
        # One beat before any loop runs: a consumer must never be seen without
        # its health key, or another worker would take its entries as a dead one's.
        with contextlib.suppress(*REDIS_DOWN):
            await self._beat()
        self._workers = [asyncio.create_task(self._heartbeat(), name="heartbeat")]
        if type(self).on_cancel is not Service.on_cancel:
            self._workers.append(asyncio.create_task(self._dispatch_cancels(), name="cancels"))
        self._loops = [asyncio.create_task(coro) for coro in self.loops()]
        self._workers += self._loops
        log.info(
            "Ready: %s as %s (pid %d)",
            self.name,
            self.instance,
            os.getpid(),
            extra={"ms": round((time.monotonic() - started) * 1000)},
        )
        return list(self._workers)

    async def shutdown(self) -> None:
        """Drain, stop the loops and owned tasks, tear down, and leave the fleet (health key, connection)."""
        log.info("stopping %s", self.instance)
        await self._drain()
        tasks = [*self._workers, *self._tasks]
        for task in tasks:
            task.cancel()
        # redis-py can swallow a cancel that lands while a connection is being
        # set up (redis/redis-py#2028): never let that hang a shutdown.
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5.0)
            if stuck:
                log.warning("%d task(s) ignored cancellation; stopping without them", len(stuck))
        await self.teardown()
        with contextlib.suppress(*REDIS_DOWN):
            await self.bus.redis.delete(self.keys.health(self.name, self.instance))
        await self.bus.close()
        await tracing.flush()
        log.info("stopped %s", self.instance)

    async def _drain(self) -> None:
        """Stop taking work, then give the work in progress ``drain_s`` to finish.

        The heartbeat and the cancel subscription go on meanwhile: the health
        key keeps other workers from claiming these entries, and a barge-in
        still stops a turn that is draining. What is not done in time is
        cancelled by the caller and stays pending, for another worker to claim
        as soon as this one's health key is gone.
        """
        self.draining = True
        for task in self._loops:
            task.cancel()
        if self._loops:
            # Short: a loop whose cancel redis-py swallowed (see shutdown) is cancelled again there.
            await asyncio.wait(self._loops, timeout=1.0)
        pending = set(self._in_flight)
        if not pending or self.settings.bus.drain_s <= 0:
            return
        started = time.monotonic()
        log.info("draining: %d item(s) in progress, up to %.0f s", len(pending), self.settings.bus.drain_s)
        with contextlib.suppress(*REDIS_DOWN):
            await self._beat()
        _, left = await asyncio.wait(pending, timeout=self.settings.bus.drain_s)
        log.info(
            "drained: %d finished, %d left to other workers", len(pending) - len(left), len(left),
            extra={"ms": round((time.monotonic() - started) * 1000)},
        )

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Start a task owned by the service: cancelled and awaited on stop."""
        task = asyncio.create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def _heartbeat(self) -> None:
        period = self.settings.bus.health_ttl_s / 3
        while True:
            try:
                await self._beat()
            except REDIS_DOWN as exc:
                _reraise_if_cancelled()
                log.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(period)

    async def _dispatch_cancels(self) -> None:
        async for cancel in self.bus.cancels():
            try:
                await self.on_cancel(cancel)
            except Exception:
                log.exception("handling a cancel failed", extra={"session": cancel.session_id, "turn": cancel.turn_id})

    async def _beat(self) -> None:
        status = {
            "pid": os.getpid(), "ready": self.ready, "draining": self.draining, "started": self.started_at,
            **self.status(),
        }
        await self.bus.beat(self.name, self.instance, status)

    # ---- consumer-group loop -------------------------------------------
    async def consume(
        self,
        stream: str,
        group: str,
        handler: Callable[[Message], Awaitable[None]],
        concurrency: int = 1,
        reclaim_every_s: float = 2.0,
        drop_handled: bool = False,
    ) -> None:
        """Handle work from ``stream`` until stopped: never lose, never die on bad input.

        An entry is acked once its handler returned or raised (a raising
        handler gets an error event to the session; retrying would fail the
        same way). Entries held by dead consumers of this service, and entries
        unacked for ``reclaim_idle_s`` (a hung handler, even on a live worker),
        are claimed every ``reclaim_every_s``. Work a handler here is still on
        is kept claimed meanwhile, for ``handler_max_s`` at most, so that slow
        work on a busy machine is not taken for hung and done twice.
        ``drop_handled``: delete each entry once acked (entries that carry a whole
        recording should not wait in Redis for the stream's trimming).
        """
        slots = asyncio.Semaphore(concurrency)
        working = self._working.setdefault((stream, group), {})
        # Capped at a second: after a Redis failover, work is picked up again within a second of the promotion.
        backoff = Backoff(cap=1.0)
        last_reclaim = 0.0
        while True:
            try:
                await self.bus.ensure_group(stream, group)
                while True:
                    entries: list[Entry] = []
                    if time.monotonic() - last_reclaim > reclaim_every_s:
                        last_reclaim = time.monotonic()
                        vouched = last_reclaim - self.settings.bus.handler_max_s
                        await self.bus.keep_claimed(
                            stream, group, self.instance, [i for i, t in working.items() if t > vouched]
                        )
                        alive = await self.bus.alive_instances(self.name)
                        alive.add(self.instance)
                        entries, poisoned = await self.bus.reclaim(
                            stream, group, self.instance, alive,
                            min_idle_ms=round(self.settings.bus.reclaim_idle_s * 1000),
                        )
                        for entry in poisoned:
                            await self._report_poisoned(entry)
                    # Read only as many as there are free slots, so that idle
                    # workers of the same kind get the rest.
                    await slots.acquire()
                    slots.release()
                    if not entries:
                        entries = await self.bus.read_group(
                            stream, group, self.instance, count=_free(slots), block_ms=1000
                        )
                    backoff.reset()
                    for entry in entries:
                        await slots.acquire()
                        item = self.spawn(self._handle(stream, group, entry, handler, slots, drop_handled),
                                          name=f"{group}-item")
                        self._in_flight.add(item)
                        item.add_done_callback(self._in_flight.discard)
            except REDIS_DOWN as exc:
                _reraise_if_cancelled()
                log.warning("%s: Redis unreachable (%s); retrying", stream, exc)
                await backoff.wait()

    async def _handle(
        self,
        stream: str,
        group: str,
        entry: Entry,
        handler: Callable[[Message], Awaitable[None]],
        slots: asyncio.Semaphore,
        drop_handled: bool = False,
    ) -> None:
        working = self._working[(stream, group)]
        working.setdefault(entry.id, time.monotonic())
        try:
            if entry.message is None:
                assert entry.error is not None
                metrics.BAD_MESSAGES.labels(self.name).inc()
                log.warning("bad message on %s: %s", stream, entry.error.reason)
                await self.bus.emit_error(entry.error.session_id, "bad_message", entry.error.reason)
            else:
                started = time.monotonic()
                try:
                    await handler(entry.message)
                except asyncio.CancelledError:
                    raise  # stopping: leave it pending, another worker reclaims it
                except Exception:
                    log.exception(
                        "handling %s failed", entry.message.type,
                        extra={"session": entry.message.session_id, "turn": entry.message.turn_id},
                    )
                    metrics.ERRORS.labels(self.name, "internal").inc()
                    await self.bus.emit_error(
                        entry.message.session_id,
                        f"{self.name}_failed",
                        f"The {self.name} service hit an internal error on this request.",
                        entry.message.turn_id,
                    )
                metrics.WORK_SECONDS.labels(self.name, entry.message.type).observe(time.monotonic() - started)
            await self._ack_with_retry(stream, group, entry.id, drop_handled)
        finally:
            working.pop(entry.id, None)
            slots.release()

    async def _ack_with_retry(self, stream: str, group: str, entry_id: bytes, drop: bool = False) -> None:
        backoff = Backoff()
        for _ in range(20):
            try:
                await self.bus.ack(stream, group, entry_id)
                if drop:
                    await self.bus.redis.xdel(stream, entry_id)
                return
            except REDIS_DOWN:
                await backoff.wait()

    async def _report_poisoned(self, entry: Entry) -> None:
        msg = entry.message
        if msg is None:
            return
        log.error("giving up on %s after repeated worker deaths", msg.type, extra={"session": msg.session_id})
        await self.bus.emit_error(
            msg.session_id,
            f"{self.name}_gave_up",
            f"The {self.name} service crashed repeatedly on this request, so it was dropped.",
            msg.turn_id,
        )


#: How long an OpenMP thread spins before it sleeps (GNU libgomp, which llama.cpp and CTranslate2 use).
SPIN_COUNT = "10000"


def yield_idle_cores() -> None:
    """Let OpenMP threads spin only briefly, then sleep, while they wait (unless the environment says otherwise).

    llama.cpp and CTranslate2 run their threads under GNU OpenMP, whose default
    is to spin for a long while (300,000 turns) at every wait. On cores other
    processes share (the fleet's own services, or anything else) a spinning
    thread holds the core the thread it waits for needs. Sleeping at once
    (``OMP_WAIT_POLICY=PASSIVE``, what this did before) cures that but makes
    every one of the hundreds of waits inside a token a sleep and a wake-up.
    SmolLM2 on 2 threads, ms per generated token (2026-11-30,
    ``bench/omp_bench.py``): quiet cores, default 6.5, PASSIVE 21, 10,000 turns
    6.6; both cores busy with other processes, default 26-458, PASSIVE 11-53,
    10,000 turns 18-19 (busy cores vary from run to run). Whisper's time is the
    same either way. In the fleet (one session, quiet machine) the first
    speakable chunk came 290 ms after the first token with PASSIVE, 80 ms with
    this. Call it in
    ``__main__`` before a model loads; ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT`` in the environment win.
    """
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)


def _reraise_if_cancelled() -> None:
    """redis-py may turn a cancel into a connection error (redis/redis-py#2028): honour the cancel."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _free(slots: asyncio.Semaphore) -> int:
    # asyncio.Semaphore has no public counter; _value is stable across 3.8-3.13.
    return max(1, slots._value)


def main_entry(service: Service) -> None:
    """Check the fleet's cross-service settings, start tracing if configured, then run a service until it stops
    (every worker's ``__main__``)."""
    exit_on_conflict(service.settings)
    tracing.setup(service.name, service.settings.bus)
    try:
        asyncio.run(service.run())
    except KeyboardInterrupt:
        pass
