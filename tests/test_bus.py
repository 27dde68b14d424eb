"""The bus against the real Redis: streams, groups, reclaim, cancel, replies, health."""

from __future__ import annotations

import asyncio
import os

from voicefleet.bus import Bus
from voicefleet.messages import Message, ToolResult, TurnRequest
from voicefleet.service import Service
from voicefleet.settings import BusSettings, ServiceSettings


async def test_emit_and_read_session_stream(bus: Bus) -> None:
    await bus.emit(TurnRequest(session_id="s1", text="hello"))
    entries = await bus.read(bus.keys.out("s1"), "0", block_ms=100)
    assert [e.message.text for e in entries if isinstance(e.message, TurnRequest)] == ["hello"]


async def test_malformed_entry_reads_as_error_not_exception(bus: Bus) -> None:
    await bus.redis.xadd(bus.keys.out("s1"), {b"h": b"{broken"})
    entries = await bus.read(bus.keys.out("s1"), "0", block_ms=100)
    assert entries[0].message is None and "JSON" in str(entries[0].error)


async def test_entries_of_a_dead_consumer_are_reclaimed(bus: Bus) -> None:
    stream, group = bus.keys.turns, "llm"
    await bus.ensure_group(stream, group)
    await bus.enqueue(stream, TurnRequest(session_id="s1", text="lost?"))
    taken = await bus.read_group(stream, group, "dead-worker", count=10, block_ms=100)
    assert len(taken) == 1  # delivered to a worker that then dies without acking
    claimed, poisoned = await bus.reclaim(stream, group, "live-worker", alive={"live-worker"})
    assert [e.message.text for e in claimed] == ["lost?"] and not poisoned
    # A live consumer's entries are left alone.
    again, _ = await bus.reclaim(stream, group, "other", alive={"live-worker", "other"})
    assert again == []


async def test_group_is_recreated_after_redis_forgets_it(bus: Bus) -> None:
    stream, group = bus.keys.speak, "tts"
    await bus.ensure_group(stream, group)
    await bus.redis.delete(stream)  # what a restarted, non-persistent Redis looks like
    assert await bus.read_group(stream, group, "w", count=1, block_ms=10) == []
    await bus.enqueue(stream, TurnRequest(session_id="s", text="after restart"))
    got = await bus.read_group(stream, group, "w", count=1, block_ms=100)
    assert got[0].message.text == "after restart"


async def test_cancel_is_broadcast_and_remembered(bus: Bus) -> None:
    received: list[Message] = []

    async def listen() -> None:
        async for cancel in bus.cancels():
            received.append(cancel)
            return

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.2)
    await bus.cancel("s1", "t9", reason="barge_in")
    await asyncio.wait_for(task, 5)
    assert received[0].turn_id == "t9"
    assert await bus.is_cancelled("s1", "t9")
    assert not await bus.is_cancelled("s1", "t10")


async def test_reply_round_trip(bus: Bus) -> None:
    await bus.reply("req1", ToolResult(call_id="req1", text="done"))
    got = await bus.wait_reply("req1", 1.0)
    assert isinstance(got, ToolResult) and got.text == "done"
    assert await bus.wait_reply("req1", 0.1) is None


class Echo(Service):
    """A tiny service: answers each turn request on the session's out stream."""

    name = "echo"

    def loops(self):  # type: ignore[no-untyped-def]
        return [self.consume(self.keys.turns, "echo", self.handle)]

    async def handle(self, msg: Message) -> None:
        assert isinstance(msg, TurnRequest)
        if msg.text == "explode":
            raise RuntimeError("boom")
        await self.bus.emit(ToolResult(session_id=msg.session_id, text=msg.text.upper()))


async def test_service_survives_bad_messages_and_handler_errors(bus: Bus, bus_settings: BusSettings) -> None:
    service = Echo(ServiceSettings(bus=bus_settings))
    runner = asyncio.create_task(service.run())
    try:
        await bus.redis.xadd(bus.keys.turns, {b"h": b'{"type":"turn_request","session_id":"s1"}'})
        await bus.enqueue(bus.keys.turns, TurnRequest(session_id="s1", text="explode"))
        await bus.enqueue(bus.keys.turns, TurnRequest(session_id="s1", text="still here"))
        seen: list[Message] = []
        last = "0"
        async with asyncio.timeout(10):
            while not any(getattr(m, "text", "") == "STILL HERE" for m in seen):
                for entry in await bus.read(bus.keys.out("s1"), last, block_ms=200):
                    last = entry.id
                    seen.append(entry.message)
        codes = [getattr(m, "code", None) for m in seen]
        assert "bad_message" in codes and "echo_failed" in codes
        health = await bus.health()
        assert health["echo"][0]["ready"] is True
        pending = await bus.redis.xpending(bus.keys.turns, "echo")
        assert pending["pending"] == 0  # everything acked
    finally:
        service.stop()
        await asyncio.wait_for(runner, 10)
    assert "echo" not in await bus.health()  # health key removed on clean stop


async def test_a_sessions_out_stream_keeps_its_last_seconds(bus_settings: BusSettings) -> None:
    # Found by the 30-minute soak: 4 live sessions' out streams grew to 75 MB of old reply audio.
    bus = Bus(bus_settings.model_copy(update={"out_stream_keep_s": 0.5}))
    try:
        for i in range(400):
            await bus.emit(ToolResult(session_id="kept", text=f"old {i}"))
        await asyncio.sleep(0.7)
        for i in range(50):
            await bus.emit(ToolResult(session_id="kept", text=f"new {i}"))
        texts = [getattr(e.message, "text", "") for e in await bus.read(bus.keys.out("kept"), "0", count=1000)]
        # Approximate trimming drops whole macro nodes (100 entries): most of the old ones, none of the new.
        assert len(texts) < 250 and texts[-50:] == [f"new {i}" for i in range(50)]
    finally:
        await bus.close()


async def test_work_streams_are_trimmed(bus_settings: BusSettings) -> None:
    bus = Bus(bus_settings.model_copy(update={"work_stream_maxlen": 100}))
    try:
        for stream in (bus.keys.turns, bus.keys.speak, bus.keys.tools):
            for i in range(1000):
                await bus.enqueue(stream, TurnRequest(session_id="s", text=str(i)))
            # Approximate trimming keeps whole macro nodes: a little over the bound, never the 1000.
            assert await bus.redis.xlen(stream) < 300
    finally:
        await bus.close()


class Hangs(Service):
    """Hangs on the first delivery of each entry, answers a redelivery."""

    name = "hangs"

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.seen: set[str] = set()

    def loops(self):  # type: ignore[no-untyped-def]
        return [self.consume(self.keys.turns, "hangs", self.handle, concurrency=2, reclaim_every_s=0.2)]

    async def handle(self, msg: Message) -> None:
        assert isinstance(msg, TurnRequest)
        if msg.text not in self.seen:
            self.seen.add(msg.text)
            await asyncio.Event().wait()  # a handler that never returns, on a worker that stays alive
        await self.bus.emit(ToolResult(session_id=msg.session_id, text=f"second try: {msg.text}"))


async def test_work_a_live_worker_hung_on_is_reclaimed(bus: Bus, bus_settings: BusSettings) -> None:
    # drain_s 0: the handler hangs by design, so a stop must not wait for it.
    update = {"reclaim_idle_s": 0.5, "handler_max_s": 1.0, "drain_s": 0}
    service = Hangs(ServiceSettings(bus=bus_settings.model_copy(update=update)))
    runner = asyncio.create_task(service.run())
    try:
        await bus.enqueue(bus.keys.turns, TurnRequest(session_id="s1", text="stuck"))
        async with asyncio.timeout(10):
            while True:
                entries = await bus.read(bus.keys.out("s1"), "0", block_ms=200)
                if any(getattr(e.message, "text", "") == "second try: stuck" for e in entries):
                    break
    finally:
        service.stop()
        await asyncio.wait_for(runner, 10)


class Slow(Service):
    """Takes a while over each entry, long enough to be stopped in the middle of one."""

    name = "slow"

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.started = asyncio.Event()

    def loops(self):  # type: ignore[no-untyped-def]
        return [self.consume(self.keys.turns, "slow", self.handle)]

    async def handle(self, msg: Message) -> None:
        assert isinstance(msg, TurnRequest)
        self.started.set()
        await asyncio.sleep(1.0)
        await self.bus.emit(ToolResult(session_id=msg.session_id, text=f"done: {msg.text}"))


async def test_a_stopped_worker_finishes_the_work_it_holds(bus: Bus, bus_settings: BusSettings) -> None:
    service = Slow(ServiceSettings(bus=bus_settings.model_copy(update={"drain_s": 10})))
    runner = asyncio.create_task(service.run())
    await bus.enqueue(bus.keys.turns, TurnRequest(session_id="s1", text="mid-turn"))
    await asyncio.wait_for(service.started.wait(), 10)
    await bus.enqueue(bus.keys.turns, TurnRequest(session_id="s1", text="queued"))
    service.stop()  # what SIGTERM does
    await asyncio.wait_for(runner, 10)
    texts = [getattr(e.message, "text", "") for e in await bus.read(bus.keys.out("s1"), "0", block_ms=100)]
    assert texts == ["done: mid-turn"]  # the entry in hand was finished, the queued one was not taken
    groups = {g["name"]: g for g in await bus.redis.xinfo_groups(bus.keys.turns)}
    assert groups[b"slow"]["pending"] == 0 and groups[b"slow"]["lag"] == 1  # acked; left for another worker


async def test_health_probe_reads_the_health_keys(bus: Bus, bus_settings: BusSettings) -> None:
    from voicefleet.health import check

    healthy, reason = await check(bus_settings, "echo", liveness=True, any_host=False)
    assert not healthy and "no health key" in reason
    service = Echo(ServiceSettings(bus=bus_settings))
    runner = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(10):
            while not (await check(bus_settings, "echo", liveness=False, any_host=False))[0]:  # noqa: ASYNC110 (polls Redis state)
                await asyncio.sleep(0.05)
        service.draining = True
        await service._beat()
        assert (await check(bus_settings, "echo", liveness=False, any_host=False))[0] is False  # not ready
        assert (await check(bus_settings, "echo", liveness=True, any_host=False))[0] is True  # alive
    finally:
        service.stop()
        await asyncio.wait_for(runner, 10)
    down = bus_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    assert (await check(down, "echo", liveness=True, any_host=False))[0] is True  # Redis down: not this process
    assert (await check(down, "echo", liveness=False, any_host=False))[0] is False


def test_sentinel_addresses_are_parsed_and_checked() -> None:
    import pydantic

    settings = BusSettings(redis_sentinels="10.0.0.1:26380, sentinel-2")
    assert settings.sentinel_addresses == [("10.0.0.1", 26380), ("sentinel-2", 26379)]
    assert BusSettings().sentinel_addresses == []
    try:
        BusSettings(redis_sentinels="host:port")
    except pydantic.ValidationError as exc:
        assert "is not host:port" in str(exc)
    else:
        raise AssertionError("a bad address was accepted")


class Long(Service):
    """Takes longer than ``reclaim_idle_s`` over each entry, as a long reply does on a busy machine."""

    name = "long"

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.handled: list[str] = []

    def loops(self):  # type: ignore[no-untyped-def]
        return [self.consume(self.keys.turns, "long", self.handle, concurrency=2, reclaim_every_s=0.2)]

    async def handle(self, msg: Message) -> None:
        assert isinstance(msg, TurnRequest)
        self.handled.append(msg.text)
        await asyncio.sleep(2.0)
        await self.bus.emit(ToolResult(session_id=msg.session_id, text=f"done: {msg.text}"))


async def test_slow_work_on_a_live_worker_is_not_taken_for_hung(bus: Bus, bus_settings: BusSettings) -> None:
    # Found under load: a 60 s reply was reclaimed from its own live worker and answered twice.
    service = Long(ServiceSettings(bus=bus_settings.model_copy(update={"reclaim_idle_s": 0.5})))
    runner = asyncio.create_task(service.run())
    try:
        await bus.enqueue(bus.keys.turns, TurnRequest(session_id="s2", text="long"))
        async with asyncio.timeout(10):
            while True:
                entries = await bus.read(bus.keys.out("s2"), "0", block_ms=200)
                if any(getattr(e.message, "text", "") == "done: long" for e in entries):
                    break
        await asyncio.sleep(0.5)
        assert service.handled == ["long"]
    finally:
        service.stop()
        await asyncio.wait_for(runner, 10)


async def test_a_task_cancelled_in_a_blocking_read_always_ends(bus: Bus) -> None:
    # Every connection and worker loop ends by being cancelled while it waits in XREAD. redis-py 8.0
    # and 8.1 could swallow that cancel at some moments (the read returned empty and the loop went on
    # forever: a gateway connection that never closed). Cancel at many moments; every task must end.
    stream = bus.keys.out("cancel-check")
    for _ in range(5):
        await bus.emit(ToolResult(session_id="cancel-check", call_id="c", name="n", ok=True, data={"x": "y" * 30000}))

    async def reader() -> None:
        last: bytes | str = "0-0"
        while True:
            entries = await bus.read(stream, last, block_ms=1000, count=200)
            if entries:
                last = entries[-1].id

    stuck = 0
    for attempt in range(120):
        task = asyncio.create_task(reader())
        await asyncio.sleep(0.001 + (attempt % 24) * 0.00025)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2.5)
        if not done:
            stuck += 1
            task.cancel()
    assert stuck == 0, f"{stuck} of 120 cancelled reads went on reading"


def test_openmp_threads_spin_briefly_unless_the_environment_says(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from voicefleet.service import SPIN_COUNT, yield_idle_cores

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    yield_idle_cores()
    assert os.environ["GOMP_SPINCOUNT"] == SPIN_COUNT
    monkeypatch.setenv("GOMP_SPINCOUNT", "50")
    yield_idle_cores()
    assert os.environ["GOMP_SPINCOUNT"] == "50"  # an operator's choice wins
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    yield_idle_cores()
    assert "GOMP_SPINCOUNT" not in os.environ  # PASSIVE asked for: nothing added
