"""Bus overhead per hop on loopback: how long a message takes from one process's
send to another's receive, for each Redis primitive the fleet uses.

    .venv/bin/python bench/bus_bench.py [--n 2000] [--redis-url redis://127.0.0.1:6379/0]
    .venv/bin/python bench/bus_bench.py --senders 4 --receivers 4 --n 500 --out bus-4x4

Senders and receivers are separate processes (as in the fleet), one of each
or several of each kind; each message carries its send time, and the receiver
records the difference. Prints a table (milliseconds) and writes
bench/results/bus.json (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import summary, table, write
from voicefleet.bus import Bus
from voicefleet.messages import AudioFrame, Cancel, TurnRequest, new_id
from voicefleet.settings import BusSettings


def settings(url: str, prefix: str) -> BusSettings:
    return BusSettings(redis_url=url, key_prefix=prefix)


async def _receive(kind: str, url: str, prefix: str, index: int, streams: list[str], ready: Any, stop: Any,
                   out: Any) -> None:
    bus = Bus(settings(url, prefix))
    delays: list[float] = []
    if kind == "cancel":
        ready.release()

        async def listen() -> None:
            async for cancel in bus.cancels():
                delays.append(time.time() - cancel.ts["sent"])

        listener = asyncio.create_task(listen())
        while not stop.is_set():  # noqa: ASYNC110 (a multiprocessing Event cannot be awaited)
            await asyncio.sleep(0.05)
        listener.cancel()
    elif kind == "work":
        await bus.ensure_group(bus.keys.turns, "bench")
        ready.release()
        consumer = f"c{index}"
        while not stop.is_set():
            for entry in await bus.read_group(bus.keys.turns, "bench", consumer, count=10, block_ms=100):
                delays.append(time.time() - entry.message.ts["sent"])
                await bus.ack(bus.keys.turns, "bench", entry.id)
    else:
        last: dict[str, bytes] = {stream: b"0-0" for stream in streams}  # fresh streams: from the start
        ready.release()
        while not stop.is_set():
            for stream, entries in (await bus.read_streams(last, block_ms=100)).items():
                for entry in entries:
                    last[stream] = entry.id
                    delays.append(time.time() - entry.message.ts["sent"])
    await bus.close()
    out.put(delays)


def receiver(*args: Any) -> None:
    asyncio.run(_receive(*args))


async def send(kind: str, url: str, prefix: str, index: int, n: int, interval: float) -> None:
    bus = Bus(settings(url, prefix))
    frame = bytes(640)  # 20 ms of 16 kHz PCM16
    session = f"bench{index}"
    for i in range(n):
        if kind == "cancel":
            msg = Cancel(session_id=session, turn_id=new_id()).stamp("sent")
            await bus.redis.publish(bus.keys.cancel_channel, msg.model_dump_json())
        elif kind == "work":
            await bus.enqueue(bus.keys.turns, TurnRequest(session_id=session, text="what time is it").stamp("sent"))
        else:
            await bus.add(
                bus.keys.audio(session), AudioFrame(session_id=session, seq=i, audio=frame).stamp("sent"), maxlen=3000
            )
        await asyncio.sleep(interval)
    await bus.close()


def sender(*args: Any) -> None:
    asyncio.run(send(*args))


def run(kind: str, url: str, n: int, interval: float, senders: int = 1, receivers: int = 1) -> list[float]:
    """``senders`` processes send ``n`` messages each; ``receivers`` processes take them (the work stream:
    one consumer group shared among them; session streams: each reads its share of the senders' sessions;
    pub/sub: each hears every message)."""
    prefix = f"vfbench-{new_id()[:6]}"
    ready, stop, out = mp.Semaphore(0), mp.Event(), mp.Queue()
    keys = settings(url, prefix).keys
    procs = []
    for r in range(receivers):
        streams = [keys.audio(f"bench{i}") for i in range(senders) if i % receivers == r]
        procs.append(mp.Process(target=receiver, args=(kind, url, prefix, r, streams, ready, stop, out)))
        procs[-1].start()
    for _ in range(receivers):
        ready.acquire(timeout=30)
    time.sleep(0.3)  # subscriptions and blocking reads in place
    workers = [mp.Process(target=sender, args=(kind, url, prefix, i, n, interval)) for i in range(senders)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(600)
    time.sleep(0.5)  # the last messages in flight
    stop.set()
    delays = [d for _ in range(receivers) for d in out.get(timeout=60)]
    for proc in procs:
        proc.join(10)
    import redis

    client = redis.Redis.from_url(url)
    found = list(client.scan_iter(match=f"{prefix}:*"))
    if found:
        client.delete(*found)
    expected = senders * n * (receivers if kind == "cancel" else 1)
    if len(delays) != expected:
        print(f"warning: {kind}: {len(delays)} of {expected} messages received", file=sys.stderr)
    return [d * 1000 for d in delays]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="messages per primitive")
    parser.add_argument("--interval-ms", type=float, default=2.0, help="pause between sends")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--senders", type=int, default=1, help="sending processes (each sends --n messages)")
    parser.add_argument("--receivers", type=int, default=1,
                        help="receiving processes (one consumer group for work, a share of the sessions each)")
    parser.add_argument("--out", default="bus", help="name of the JSON file under bench/results/")
    args = parser.parse_args()
    rows = []
    labels = {
        "session": "audio frame, capped stream (XADD -> XREAD)",
        "work": "turn request, stream + group (XADD -> XREADGROUP)",
        "cancel": "cancel, pub/sub (PUBLISH -> message)",
    }
    results = {}
    for kind, label in labels.items():
        s = summary(run(kind, args.redis_url, args.n, args.interval_ms / 1000, args.senders, args.receivers))
        results[kind] = s
        rows.append({"hop": label, **{k: s[k] for k in ("n", "p50", "p90", "p99", "mean")}})
    print(f"Bus overhead per hop, milliseconds ({args.senders} sending and {args.receivers} receiving processes)\n")
    print(table(rows, ["hop", "n", "p50", "p90", "p99", "mean"]))
    path = write(args.out, {"unit": "ms", "senders": args.senders, "receivers": args.receivers, "hops": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
