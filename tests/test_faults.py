"""Faults on the real fleet: a worker killed with SIGKILL, a Redis restarted under it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import free_port
from fleet import Proc, child_env, mint_token, wait_for_health, wait_for_http
from speech import say, silence
from websockets.asyncio.client import ClientConnection, connect

from voicefleet.audio import BUS_RATE

pytestmark = [pytest.mark.fleet, pytest.mark.models]


def token(env: dict[str, str], sub: str = "alice") -> str:
    return mint_token(env["VF_GATEWAY_JWT_SECRET"], sub)


async def speak(ws: ClientConnection, audio: np.ndarray, realtime: float = 0.25) -> None:
    """Send audio in 32 ms frames, faster than real time by ``1/realtime``."""
    frame = 512
    for i in range(0, len(audio), frame):
        await ws.send(audio[i : i + frame].tobytes())
        await asyncio.sleep(frame / BUS_RATE * realtime)


async def next_event(ws: ClientConnection, kind: str, timeout: float = 30.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            if isinstance(raw, str) and (event := json.loads(raw))["type"] == kind:
                return event


async def next_transcript(ws: ClientConnection, timeout: float = 30.0) -> str:
    return str((await next_event(ws, "transcript_final", timeout))["text"])


def utterance(text: str) -> np.ndarray:
    return np.concatenate([silence(0.3), say(text), silence(1.2)])


class Fleet:
    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env, self.tmp = env, tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[Proc] = []

    def start(self, name: str, *args: str) -> Proc:
        proc = Proc(list(args), self.env, self.tmp / f"{name}-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


@pytest.fixture
def stt_fleet(fleet_env: dict[str, str], tmp_path: Path) -> Iterator[Fleet]:
    env = child_env(fleet_env)
    env.update(VF_GATEWAY_REQUIRED_SERVICES="stt")
    fleet = Fleet(env, tmp_path)
    try:
        gateway = fleet.start("gateway", "-m", "gateway", "serve", "--port", str(fleet.port))
        wait_for_http(gateway, fleet.url + "/v1/health")
        fleet.start("stt", "-m", "vad_stt_worker")
        wait_for_health(fleet.url, {"stt": 1})
        yield fleet
    finally:
        fleet.stop()


async def test_killed_worker_leaves_health_and_comes_back(stt_fleet: Fleet) -> None:
    ws = await connect(f"{stt_fleet.url.replace('http', 'ws')}/v1/ws/audio?token={token(stt_fleet.env)}")
    async with ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        await speak(ws, utterance("Please turn on the kitchen lights."))
        assert "kitchen" in (await next_transcript(ws)).lower()

        worker = stt_fleet.procs[1]
        worker.kill()  # SIGKILL: no goodbye, the health key just stops being refreshed
        killed = time.monotonic()
        async with httpx.AsyncClient(base_url=stt_fleet.url) as http:
            while (await http.get("/v1/health")).json()["services"]["stt"]["processes"]:
                assert time.monotonic() - killed < 2.0 + 1.0, "health still lists the dead worker"
                await asyncio.sleep(0.1)
            health = (await http.get("/v1/health")).json()
            assert health["status"] == "degraded"

        stt_fleet.start("stt", "-m", "vad_stt_worker")
        await asyncio.to_thread(wait_for_health, stt_fleet.url, {"stt": 1})
        # The same connection goes on: the new worker takes the session over.
        await speak(ws, utterance("What is the weather like tomorrow?"))
        assert "weather" in (await next_transcript(ws)).lower()


@pytest.fixture
def own_redis_port() -> Iterator[int]:
    """A port for a redis-server of this test's own, restarted without disturbing other tests."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    yield port
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)


def start_redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    return proc


async def test_a_restarted_redis_loses_no_session(fleet_env: dict[str, str], own_redis_port: int,
                                                  tmp_path: Path) -> None:
    redis_port = own_redis_port
    redis_proc = start_redis(redis_port)
    env = child_env(fleet_env)
    env.update(VF_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", VF_GATEWAY_REQUIRED_SERVICES="stt")
    fleet = Fleet(env, tmp_path)
    try:
        gateway = fleet.start("gateway", "-m", "gateway", "serve", "--port", str(fleet.port))
        wait_for_http(gateway, fleet.url + "/v1/health")
        fleet.start("stt", "-m", "vad_stt_worker")
        await asyncio.to_thread(wait_for_health, fleet.url, {"stt": 1})
        ws = await connect(f"{fleet.url.replace('http', 'ws')}/v1/ws/audio?token={token(env)}")
        async with ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
            await speak(ws, utterance("Remind me to call my sister."))
            assert "sister" in (await next_transcript(ws)).lower()

            redis_proc.terminate()  # everything in Redis is gone (no persistence)
            redis_proc.wait(10)
            await speak(ws, silence(0.5))  # audio while the bus is down is refused politely
            assert (await next_event(ws, "error"))["code"] == "bus_unavailable"
            redis_proc = start_redis(redis_port)
            await asyncio.to_thread(wait_for_health, fleet.url, {"stt": 1})
            await asyncio.sleep(3)  # the gateway re-registers the session within its keepalive period
            await speak(ws, utterance("How far away is the moon?"))
            assert "moon" in (await next_transcript(ws)).lower()
    finally:
        fleet.stop()
        redis_proc.terminate()
        redis_proc.wait(10)
