"""Start service processes for tests and wait until they are ready."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import redis

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    """A service started as a real process, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.log = args, log
        self.handle = open(log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=self.handle, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self.handle.close()

    def stopped(self) -> None:
        """Wait for a process already sent SIGTERM (10 s, then SIGKILL)."""
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.handle.close()


def wait_for_log(proc: Proc, text: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.output():
            return
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.args} exited early:\n{proc.output()[-3000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"{proc.args} did not log {text!r} in {timeout}s:\n{proc.output()[-3000:]}")


def wait_for_http(proc: Proc, url: str, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers (a server logs "ready" before its socket listens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.args} exited early:\n{proc.output()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout}s:\n{proc.output()[-3000:]}")


def wait_for_health(base_url: str, services: dict[str, int], timeout: float = 180.0) -> dict:
    """Wait until /v1/health shows at least ``n`` ready processes of each service."""
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        try:
            last = httpx.get(f"{base_url}/v1/health", timeout=2).json()
            got = last.get("services", {})
            if all(got.get(name, {}).get("ready", 0) >= n for name, n in services.items()):
                return last
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"services {services} not ready in {timeout}s; last health: {last}")


def child_env(env: dict[str, str]) -> dict[str, str]:
    out = dict(env)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return out


def mint_token(secret: str, sub: str = "alice", **overrides: object) -> str:
    """A JWT as the gateway expects it (HS256, aud/iss voicefleet, 10 min); ``None`` drops a claim."""
    claims: dict[str, object] = {"sub": sub, "exp": int(time.time()) + 600, "aud": "voicefleet", "iss": "voicefleet"}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, algorithm="HS256")


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key under a test's own prefix."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 60) -> None:
    """Wait until ``check()`` is true (state in Redis has no event to wait on)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 (polls Redis state; there is no event to await)
            await asyncio.sleep(0.01)


@dataclass
class RunningFleet:
    """A gateway and workers started as processes under a key prefix of their own."""

    port: int
    prefix: str
    secret: str
    procs: dict[str, Proc]

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def fleet_secret(prefix: str) -> str:
    """The JWT secret of the fleet :func:`running_fleet` starts under ``prefix`` (to mint tokens before it runs)."""
    return f"test-secret-{prefix}-0123456789abcdef0123456789"


@contextmanager
def running_fleet(
    redis_url: str, port: int, prefix: str, logs: Path, workers: dict[str, str], clean: bool = True, **env: str
) -> Iterator[RunningFleet]:
    """``python -m gateway serve`` plus one process per worker (name -> module), ready; stopped and cleaned after
    (``clean=False``: the test's Redis is its own, and may be gone by then)."""
    secret = fleet_secret(prefix)
    child = child_env(dict(os.environ))
    child.update(VF_REDIS_URL=redis_url, VF_KEY_PREFIX=prefix, VF_HEALTH_TTL_S="3", PYTHONUNBUFFERED="1",
                 VF_GATEWAY_JWT_SECRET=secret, VF_GATEWAY_REQUIRED_SERVICES=",".join(workers), **env)
    procs = {"gateway": Proc(["-m", "gateway", "serve", "--port", str(port)], child, logs / "gateway.log")}
    try:
        for name, module in workers.items():
            procs[name] = Proc(["-m", module], child, logs / f"{name}.log")
        wait_for_log(procs["gateway"], "Ready: gateway", timeout=30)
        wait_for_health(f"http://127.0.0.1:{port}", {name: 1 for name in workers}, timeout=240)
        yield RunningFleet(port, prefix, secret, procs)
    finally:
        # All at once: each process drains and stops on its own, no need to take turns.
        for proc in procs.values():
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.stopped()
        if clean:
            delete_prefix(redis_url, prefix)
