"""Time to recover when Redis loses its primary: the Sentinel failover test's scenario, measured several times.

    .venv/bin/python bench/failover.py [--runs 5] [--down-after-ms 1000]

A primary, a replica and a Sentinel run on free loopback ports; the fleet (gateway, orchestrator, tools, TTS)
reaches Redis through the Sentinel. Each run: a user takes a note on an open session, the primary is
SIGKILLed, and the user asks for their notes again and again (as a person would after "the message bus is
unreachable") until the fleet answers; with --mid-turn-s the question is already on its way when the
primary dies. Measured from the kill: the replica promoted (the Sentinel names it and it says it is the
primary), the first reply audio at the client, and the whole reply heard (``audio_end``). Then the old
primary comes back as a replica of the new one, for the next run. Prints a table (seconds) and writes
bench/results/failover.json (failover-mid-turn.json).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fleet import mint_token, running_fleet  # noqa: E402
from sentinel import fleet_env, redis_with_sentinel  # noqa: E402

from audio_client.headless import HeadlessClient  # noqa: E402
from audio_client.protocol import StartOptions  # noqa: E402
from bench.common import summary, table, write  # noqa: E402
from voicefleet.messages import new_id  # noqa: E402

WORKERS = {"llm": "llm_orchestrator", "tts": "tts_worker", "tools": "tools_worker"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one_failover(client: HeadlessClient, trio: Any, run: int, mid_turn_s: float | None) -> dict[str, float]:
    note = await client.ask(f"Take a note: failover number {run}.", timeout_s=60)
    assert note.ok, note
    await asyncio.to_thread(trio.wait_until_replicated)
    pending: asyncio.Task[Any] | None = None
    sent = 0.0
    if mid_turn_s is not None:  # a turn in flight when the primary dies
        sent = time.monotonic()
        pending = asyncio.create_task(client.ask("What notes do I have?", timeout_s=30))
        await asyncio.sleep(mid_turn_s)
    killed = time.monotonic()
    print(f"  killing the primary at {time.strftime('%H:%M:%S')}.{int(time.time() % 1 * 1000):03d}", flush=True)
    trio.kill_primary()
    promoted = await asyncio.to_thread(trio.wait_for_promotion)
    tries = 0
    if pending is not None:
        result = await pending
        tries += 1
        if result.ok and f"number {run}" in result.reply.lower():
            return _row(promoted, killed, sent, result, tries)
        print(f"  the turn in flight: {'timed out' if result.timed_out else 'ended'} {result.errors or ''} "
              f"{result.reply[:80]!r}", flush=True)
    while True:
        tries += 1
        sent = time.monotonic()
        result = await client.ask("What notes do I have?", timeout_s=10)
        if result.ok and f"number {run}" in result.reply.lower():
            return _row(promoted, killed, sent, result, tries)
        print(f"  try {tries}: {'timed out' if result.timed_out else 'answered'} {result.errors or ''} "
              f"{result.reply[:80]!r}", flush=True)
        if time.monotonic() - killed > 60:
            raise TimeoutError(f"no answer 60 s after the kill: {result}")


def _row(promoted: float, killed: float, sent: float, result: Any, tries: int) -> dict[str, float]:
    """Seconds after the kill: promoted, first reply audio at the client, the whole reply heard."""
    first_audio = sent - killed + (result.first_audio_ms or 0.0) / 1000
    return {"promoted_s": promoted, "first_audio_s": first_audio, "answered_s": time.monotonic() - killed,
            "tries": tries}


def revive_old_primary(trio: Any, folder: Path) -> None:
    """Start the killed primary again on its port; the Sentinel makes it a replica of the new primary."""
    old_port, new_port = trio.primary, trio.replica
    trio.procs["primary"] = subprocess.Popen(
        ["redis-server", "--port", str(old_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--repl-diskless-sync-delay", "0", "--dir", str(folder / "primary")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    trio.procs["primary"], trio.procs["replica"] = trio.procs["replica"], trio.procs["primary"]
    trio.primary, trio.replica = new_port, old_port


async def main_async(args: argparse.Namespace, folder: Path) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    with redis_with_sentinel(folder / "redis", down_after_ms=args.down_after_ms) as trio:
        env = fleet_env(trio, folder)
        url = f"redis://127.0.0.1:{trio.primary}/0"
        with running_fleet(url, _free_port(), f"vfbench-{new_id()[:8]}", folder, WORKERS, clean=False,
                           **env) as fleet:
            options = StartOptions(wake_word="")
            async with HeadlessClient(fleet.ws, mint_token(fleet.secret, "ada"), options) as client:
                for run in range(1, args.runs + 1):
                    row = await one_failover(client, trio, run, args.mid_turn_s)
                    print(f"run {run}: promoted {row['promoted_s']:.2f} s, first audio {row['first_audio_s']:.2f} s, "
                          f"whole reply {row['answered_s']:.2f} s ({row['tries']} tries)", flush=True)
                    rows.append(row)
                    revive_old_primary(trio, folder / "redis")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="failovers, one after the other (default 5)")
    parser.add_argument("--down-after-ms", type=int, default=1000,
                        help="the Sentinel's down-after-milliseconds (default 1000; its own default is 30000)")
    parser.add_argument("--mid-turn-s", type=float, default=None,
                        help="kill the primary this long after a question was sent (a turn in flight), "
                        "instead of between turns")
    parser.add_argument("--logs", help="keep the processes' logs in this folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.logs or tmp)
        (folder / "redis").mkdir(parents=True)
        rows = asyncio.run(main_async(args, folder))
    promoted = summary([r["promoted_s"] for r in rows])
    answered = summary([r["answered_s"] for r in rows])
    first_audio = summary([r["first_audio_s"] for r in rows])
    print(f"\nRedis primary killed; seconds after the kill (down-after-milliseconds {args.down_after_ms})\n")
    print(table([{"what": "replica promoted", **promoted}, {"what": "first reply audio at the client", **first_audio},
                 {"what": "whole reply heard (audio_end)", **answered}], ["what", "n", "p50", "p90", "mean"]))
    name = "failover" if args.mid_turn_s is None else "failover-mid-turn"
    path = write(name, {"unit": "s", "down_after_ms": args.down_after_ms, "mid_turn_s": args.mid_turn_s, "runs": rows,
                              "promoted": promoted, "first_audio": first_audio, "answered": answered})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
