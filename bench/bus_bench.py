"""Bus overhead per hop on loopback: how long a message takes from one process's
send to another's receive, for each Redis primitive the fleet uses.

    .venv/bin/python bench/bus_bench.py [--n 2000] [--redis-url redis://127.0.0.1:6379/0]

Sender and receiver are separate processes (as in the fleet); each message
carries its send time, and the receiver records the difference. Prints a table
(milliseconds) and writes bench/results/bus.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import summary, table, write
from voicefleet.bus import Bus
from voicefleet.messages import AudioFrame, Cancel, TurnRequest, new_id
from voicefleet.settings import BusSettings


def settings(url: str, prefix: str) -> BusSettings:
    return BusSettings(redis_url=url, key_prefix=prefix)


async def _receive(kind: str, url: str, prefix: str, n: int, ready: mp.Event, out: mp.Queue) -> None:
    bus = Bus(settings(url, prefix))
    delays: list[float] = []
    if kind == "cancel":
        ready.set()
        async for cancel in bus.cancels():
            delays.append(time.time() - cancel.ts["sent"])
            if len(delays) >= n:
                break
    elif kind == "work":
        await bus.ensure_group(bus.keys.turns, "bench")
        ready.set()
        while len(delays) < n:
            for entry in await bus.read_group(bus.keys.turns, "bench", "c1", count=100, block_ms=1000):
                delays.append(time.time() - entry.message.ts["sent"])
                await bus.ack(bus.keys.turns, "bench", entry.id)
    else:
        stream = bus.keys.audio("bench")
        last = "$"
        ready.set()
        while len(delays) < n:
            for entry in await bus.read(stream, last, block_ms=1000, count=100):
                last = entry.id
                delays.append(time.time() - entry.message.ts["sent"])
    await bus.close()
    out.put(delays)


def receiver(kind: str, url: str, prefix: str, n: int, ready: mp.Event, out: mp.Queue) -> None:
    asyncio.run(_receive(kind, url, prefix, n, ready, out))


async def send(kind: str, url: str, prefix: str, n: int, interval: float) -> None:
    bus = Bus(settings(url, prefix))
    frame = bytes(640)  # 20 ms of 16 kHz PCM16
    for i in range(n):
        if kind == "cancel":
            msg = Cancel(session_id="bench", turn_id=new_id()).stamp("sent")
            await bus.redis.publish(bus.keys.cancel_channel, msg.model_dump_json())
        elif kind == "work":
            await bus.enqueue(bus.keys.turns, TurnRequest(session_id="bench", text="what time is it").stamp("sent"))
        else:
            await bus.add(
                bus.keys.audio("bench"), AudioFrame(session_id="bench", seq=i, audio=frame).stamp("sent"), maxlen=3000
            )
        await asyncio.sleep(interval)
    await bus.close()


def run(kind: str, url: str, n: int, interval: float) -> list[float]:
    prefix = f"vfbench-{new_id()[:6]}"
    ready, out = mp.Event(), mp.Queue()
    proc = mp.Process(target=receiver, args=(kind, url, prefix, n, ready, out))
    proc.start()
    ready.wait(10)
    time.sleep(0.2)
    asyncio.run(send(kind, url, prefix, n, interval))
    delays = out.get(timeout=60)
    proc.join(10)
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    return [d * 1000 for d in delays]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="messages per primitive")
    parser.add_argument("--interval-ms", type=float, default=2.0, help="pause between sends")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    rows = []
    labels = {
        "session": "audio frame, capped stream (XADD -> XREAD)",
        "work": "turn request, stream + group (XADD -> XREADGROUP)",
        "cancel": "cancel, pub/sub (PUBLISH -> message)",
    }
    results = {}
    for kind, label in labels.items():
        s = summary(run(kind, args.redis_url, args.n, args.interval_ms / 1000))
        results[kind] = s
        rows.append({"hop": label, **{k: s[k] for k in ("n", "p50", "p90", "p99", "mean")}})
    print("Bus overhead per hop, milliseconds (sender and receiver in separate processes)\n")
    print(table(rows, ["hop", "n", "p50", "p90", "p99", "mean"]))
    path = write("bus", {"unit": "ms", "hops": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
