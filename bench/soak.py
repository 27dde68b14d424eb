"""Soak: sessions talking for a long time while workers are killed; does the fleet heal and stay flat?

    .venv/bin/python bench/soak.py                     # 30 minutes, 4 sessions, a worker killed every 5
    .venv/bin/python bench/soak.py --minutes 4 --kill-every 1

Starts its own fleet with ``./run.sh --no-setup`` (under supervisord, in a
private run folder, key prefix and port), then ``--sessions`` headless clients
speak the commands of ``bench/client_bench.py`` in turn for ``--minutes``,
while every ``--kill-every`` minutes one worker (STT, LLM, TTS, tools in
rotation) is killed with SIGKILL and left to supervisord to restart.

Reports the resident memory of each service process and the memory of Redis
(the whole server, and the keys under the soak's prefix) at the start (after
one warm-up turn per session) and at the end; the per-session keys left
after every session closed (at once, and after the closed-session linger);
and the turns lost. A turn answered late (within ``--timeout``) is not lost.
Prints a table and writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audio_client.headless import HeadlessClient, TurnResult  # noqa: E402
from audio_client.protocol import ConnectionLost, StartOptions  # noqa: E402
from bench.client_bench import COMMANDS, _free_port, speak  # noqa: E402
from bench.common import RESULTS, table, write  # noqa: E402

WORKERS = ["stt-1", "llm-1", "tts-1", "tools-1"]
#: How long a closed session's keys are kept on purpose (voicefleet.sessions.CLOSED_TTL_S), plus a margin.
LINGER_S = 65


class Fleet:
    """The fleet ./run.sh starts, in a private run folder, key prefix and port."""

    def __init__(self) -> None:
        self.prefix = f"vfsoak-{os.urandom(3).hex()}"
        self.port = _free_port()
        self.run_dir = RESULTS / "soak_run"
        self.operator = os.urandom(16).hex()
        self.secret = os.urandom(24).hex()
        self.env = dict(os.environ, VF_KEY_PREFIX=self.prefix, VF_GATEWAY_JWT_SECRET=self.secret,
                        VF_GATEWAY_PORT=str(self.port), VF_RUN_DIR=str(self.run_dir),
                        VF_GATEWAY_OPERATOR_TOKEN=self.operator, PYTHONUNBUFFERED="1")
        self.http = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        started = subprocess.run(["./run.sh", "--no-setup"], cwd=ROOT, env=self.env, capture_output=True,
                                 text=True, timeout=600)
        if started.returncode:
            raise SystemExit(f"./run.sh failed:\n{started.stdout[-3000:]}\n{started.stderr[-3000:]}")

    def stop(self) -> None:
        subprocess.run(["./kill_all.sh"], cwd=ROOT, env=self.env, capture_output=True, timeout=120)

    def token(self) -> str:
        from gateway import auth
        from gateway.settings import GatewaySettings

        return auth.mint("soak", 86400, GatewaySettings(jwt_secret=self.secret))  # type: ignore[arg-type]

    def pid(self, program: str) -> int | None:
        out = subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(self.run_dir / "supervisord.conf"),
                              "pid", program], capture_output=True, text=True, timeout=10).stdout.strip()
        return int(out) if out.isdigit() and int(out) > 0 else None

    def programs(self) -> list[str]:
        return ["gateway", *WORKERS]

    def rss_mb(self) -> dict[str, dict[str, Any]]:
        """Resident memory of each program's current process."""
        out: dict[str, dict[str, Any]] = {}
        for program in self.programs():
            pid = self.pid(program)
            out[program] = {"pid": pid, "rss_mb": _rss_mb(pid) if pid else None}
        return out

    def health(self) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.http}/v1/health",
                                         headers={"Authorization": f"Bearer {self.operator}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            data: dict[str, Any] = json.load(response)
            return data


def _rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def redis_memory(prefix: str) -> dict[str, Any]:
    """The Redis server's used memory, and the bytes and count of the keys under ``prefix``."""
    import redis

    client = redis.Redis.from_url(os.environ.get("VF_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        used = int(client.info("memory")["used_memory"])
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        prefix_bytes = sum(int(client.memory_usage(k) or 0) for k in keys)
        return {"server_used_mb": round(used / 2**20, 2), "prefix_keys": len(keys),
                "prefix_kb": round(prefix_bytes / 1024, 1)}
    finally:
        client.close()


def session_keys(prefix: str, session_ids: set[str]) -> list[str]:
    """Keys under ``prefix`` that belong to one of the sessions."""
    import redis

    client = redis.Redis.from_url(os.environ.get("VF_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        names = [k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        return sorted(k for k in names if any(sid in k for sid in session_ids))
    finally:
        client.close()


def delete_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(os.environ.get("VF_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class Soak:
    def __init__(self, fleet: Fleet, args: argparse.Namespace) -> None:
        self.fleet, self.args = fleet, args
        self.results: list[TurnResult] = []
        self.session_ids: set[str] = set()
        self.reconnects = 0
        self.kills: list[dict[str, Any]] = []
        self.warm = asyncio.Event()
        self._warmed = 0

    async def session(self, index: int, clips: list[np.ndarray], token: str, until: float) -> None:
        turn = 0
        while time.monotonic() < until:
            try:
                async with HeadlessClient(self.fleet.http.replace("http", "ws"), token,
                                          StartOptions(wake_word="")) as client:
                    self.session_ids.add(client.session.session_id)
                    while time.monotonic() < until:
                        clip = clips[(index + turn) % len(clips)]
                        result = await client.say(clip, trailing_silence_s=1.0, timeout_s=self.args.timeout)
                        turn += 1
                        if turn == 1:
                            self._warmed += 1
                            if self._warmed == self.args.sessions:
                                self.warm.set()
                            continue  # the warm-up turn is not counted
                        self.results.append(result)
                        print(f"  [{_clock()}] session {index} turn {turn}: "
                              f"{'ok  ' if result.ok else 'LOST'} {result.transcript!r} -> {result.reply[:40]!r}",
                              flush=True)
                        await asyncio.sleep(self.args.pause)
            except (ConnectionLost, OSError) as exc:
                self.reconnects += 1
                self.results.append(TurnResult(timed_out=True, errors=[f"connection lost: {exc}"]))
                print(f"  [{_clock()}] session {index}: connection lost ({exc}); reconnecting", flush=True)
                await asyncio.sleep(1.0)

    async def killer(self, until: float) -> None:
        await self.warm.wait()
        n = 0
        while True:
            await asyncio.sleep(self.args.kill_every * 60)
            if time.monotonic() >= until:
                return
            program = WORKERS[n % len(WORKERS)]
            n += 1
            pid = self.fleet.pid(program)
            if pid is None:
                continue
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            back = await self._back(program, pid)
            self.kills.append({"program": program, "pid": pid, "restarted_s": back and round(back - killed, 1)})
            print(f"  [{_clock()}] killed {program} (pid {pid}); "
                  f"{'back in /v1/health after %.1f s' % (back - killed) if back else 'NOT back'}", flush=True)

    async def _back(self, program: str, old_pid: int, within_s: float = 180) -> float | None:
        """When a new ready process of the program's service shows in /v1/health."""
        service = program.split("-")[0]
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                health = await asyncio.to_thread(self.fleet.health)
                pids = [i["pid"] for i in health["services"].get(service, {}).get("instances", []) if i.get("ready")]
                if any(p != old_pid for p in pids):
                    return time.monotonic()
            await asyncio.sleep(0.5)
        return None

    async def run(self) -> dict[str, Any]:
        clips = [speak(text) for text in COMMANDS]
        token = self.fleet.token()
        until = time.monotonic() + self.args.minutes * 60
        sessions = [asyncio.create_task(self.session(i, clips, token, until)) for i in range(self.args.sessions)]
        await self.warm.wait()
        start = {"rss": self.fleet.rss_mb(), "redis": redis_memory(self.fleet.prefix)}
        print(f"  [{_clock()}] warm: measuring from now", flush=True)
        killer = asyncio.create_task(self.killer(until))
        settled: dict[str, Any] = {}

        async def settle() -> None:
            # The per-session streams fill their windows first (reply events: VF_OUT_STREAM_KEEP_S, 120 s;
            # microphone audio: AUDIO_MAXLEN, ~96 s); growth after that is what would not stop.
            await asyncio.sleep(self.args.settle * 60)
            settled.update(rss=self.fleet.rss_mb(), redis=redis_memory(self.fleet.prefix))
            print(f"  [{_clock()}] settled: measuring again", flush=True)

        settler = asyncio.create_task(settle())
        await asyncio.gather(*sessions)
        for task in (killer, settler):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        end = {"rss": self.fleet.rss_mb(), "redis": redis_memory(self.fleet.prefix)}
        left_now = session_keys(self.fleet.prefix, self.session_ids)
        print(f"  [{_clock()}] all sessions closed; waiting {LINGER_S} s (closed sessions' linger)", flush=True)
        await asyncio.sleep(LINGER_S)
        left_later = session_keys(self.fleet.prefix, self.session_ids)
        lost = [r for r in self.results if not r.ok]
        return {
            "minutes": self.args.minutes, "sessions": self.args.sessions, "kill_every_min": self.args.kill_every,
            "turns": len(self.results), "turns_lost": len(lost), "reconnects": self.reconnects,
            "lost": [r.to_json() for r in lost], "kills": self.kills, "start": start, "settled": settled or None,
            "settle_min": self.args.settle, "end": end,
            "session_keys_at_close": left_now, "session_keys_after_linger": left_later,
            "redis_after_linger": redis_memory(self.fleet.prefix),
        }


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _growth(before: float | None, after: float | None) -> float | None:
    return round((after / before - 1) * 100, 1) if before and after else None


def report(data: dict[str, Any]) -> None:
    rows = []
    settled = data.get("settled") or {}
    for program in data["start"]["rss"]:
        before, after = data["start"]["rss"][program], data["end"]["rss"][program]
        mid = settled.get("rss", {}).get(program, {})
        restarted = before["pid"] != after["pid"] or (mid and mid["pid"] != after["pid"])
        rows.append({"what": f"{program} RSS MB", "start": before["rss_mb"], "settled": mid.get("rss_mb"),
                     "end": after["rss_mb"], "growth_%": _growth(before["rss_mb"], after["rss_mb"]),
                     "from_settled_%": _growth(mid.get("rss_mb"), after["rss_mb"]),
                     "note": "restarted" if restarted else ""})
    for key, label in (("server_used_mb", "Redis used MB (whole server)"), ("prefix_kb", "Redis soak keys KB"),
                       ("prefix_keys", "Redis soak keys")):
        before, after = data["start"]["redis"][key], data["end"]["redis"][key]
        mid = settled.get("redis", {}).get(key)
        rows.append({"what": label, "start": before, "settled": mid, "end": after,
                     "growth_%": _growth(before, after), "from_settled_%": _growth(mid, after), "note": ""})
    print()
    print(f"{data['minutes']:g} min, {data['sessions']} sessions, a worker killed every {data['kill_every_min']:g} "
          f"min ({len(data['kills'])} kills): {data['turns']} turns, {data['turns_lost']} lost, "
          f"{data['reconnects']} reconnects")
    print(f"(settled: {data.get('settle_min', 0):g} min after the warm-up turn, once the per-session streams "
          "filled their windows)")
    print(table(rows, ["what", "start", "settled", "end", "growth_%", "from_settled_%", "note"]))
    print(f"per-session keys at close: {len(data['session_keys_at_close'])}; "
          f"after {LINGER_S} s: {len(data['session_keys_after_linger'])} {data['session_keys_after_linger'][:8]}")
    for kill in data["kills"]:
        print(f"killed {kill['program']} (pid {kill['pid']}): back after {kill['restarted_s']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the sessions talk")
    parser.add_argument("--kill-every", type=float, default=5.0, help="minutes between worker kills")
    parser.add_argument("--sessions", type=int, default=4, help="sessions talking at once")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between a session's turns")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="minutes after the warm-up turn for a second memory sample (streams at their bounds)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds a turn may take before it counts as lost (a late answer is not lost)")
    args = parser.parse_args()
    fleet = Fleet()
    try:
        print(f"starting the fleet with ./run.sh (run folder {fleet.run_dir})", flush=True)
        fleet.start()
        data = asyncio.run(Soak(fleet, args).run())
    finally:
        fleet.stop()
        delete_prefix(fleet.prefix)
    report(data)
    print(f"\nwrote {write('soak', data)}")


if __name__ == "__main__":
    main()
