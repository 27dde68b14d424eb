"""The laptop client: its audio path, barge-in, gateway restarts, and missing devices.

Audio hardware cannot exist in CI, so the in-process tests give the client a
paced stand-in for PortAudio (a thread that delivers microphone frames and
pulls speaker samples in real time, as PortAudio's callbacks do); the gateway,
Redis and WebSocket are real. The restart test runs the real CLI process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from client_support import REPLY, GatewayProc, ScriptedFleet, gateway_env, private_prefix
from conftest import REDIS_URL, free_port
from fleet import ROOT, child_env
from speech import say, silence

from audio_client.live import Console, LiveClient
from audio_client.protocol import Reconnecting, StartOptions
from voicefleet.bus import Bus
from voicefleet.messages import TextInput
from voicefleet.settings import BusSettings

pytestmark = pytest.mark.fleet


class PacedAudio:
    """Stands in for PyAudioIO: real-time microphone frames from an array, a speaker that records."""

    def __init__(self, mic: np.ndarray, input_rate: int = 16000, output_rate: int = 22050) -> None:
        self.mic, self.input_rate, self.output_rate = mic, input_rate, output_rate
        self.heard: list[bytes] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_mic: Callable[[bytes], None], speaker: Callable[[int], bytes]) -> None:
        def run() -> None:
            period, offset, start, tick = 0.04, 0, time.monotonic(), 0
            while not self._stop.is_set():
                frame = self.mic[offset : offset + 640]
                offset += 640
                on_mic(np.pad(frame, (0, 640 - len(frame))).astype(np.int16).tobytes())
                self.heard.append(speaker(int(self.output_rate * period)))
                tick += 1
                self._stop.wait(max(0.0, start + tick * period - time.monotonic()))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def loud_seconds(self) -> float:
        samples = np.frombuffer(b"".join(self.heard), dtype=np.int16)
        return float((np.abs(samples) > 2000).sum()) / self.output_rate


@pytest.fixture(scope="module")
def settings(redis_available: None) -> Iterator[BusSettings]:
    with private_prefix(REDIS_URL) as settings:
        yield settings


@pytest.fixture(scope="module")
def gateway(settings: BusSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    """One gateway for the in-process tests."""
    gw = GatewayProc(gateway_env(settings), free_port(), tmp_path_factory.mktemp("gw") / "gateway.log").start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def own_gateway(settings: BusSettings, tmp_path: Path) -> Iterator[GatewayProc]:
    """A gateway of this test's own, to kill and restart."""
    gw = GatewayProc(gateway_env(settings), free_port(), tmp_path / "gateway.log").start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
async def bus(settings: BusSettings) -> AsyncIterator[Bus]:
    b = Bus(settings)
    yield b
    await b.close()


async def eventually(check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def live_client(gw: GatewayProc, audio: PacedAudio, **kwargs: object):  # type: ignore[no-untyped-def]
    out, err = io.StringIO(), io.StringIO()
    connector = Reconnecting(gw.ws, gw.token(), StartOptions(wake_word=""), on_status=lambda s: err.write(s + "\n"))
    client = LiveClient(connector, audio, Console(out, err), keyboard=False, **kwargs)  # type: ignore[arg-type]
    task = asyncio.create_task(client.run())
    try:
        yield client, out, err
    finally:
        client.quit()
        await asyncio.wait_for(task, 10)


async def test_live_client_talks_plays_the_reply_and_reports_playback(gateway: GatewayProc, bus: Bus) -> None:
    audio = PacedAudio(np.concatenate([silence(0.5), say("What time is it?")]))
    async with ScriptedFleet(bus, reply_audio_s=0.6) as fleet, live_client(gateway, audio) as (client, out, err):
        await eventually(lambda: client._session is not None, 10, "a session")
        sid = client._session.session_id
        await eventually(lambda: bool(fleet.turns), 15, "the spoken question to end a turn")
        await eventually(lambda: client.playback.played >= int(0.6 * 22050), 10, "the reply to play")
        await eventually(lambda: fleet.playback.get(sid, [])[-1:] == ["playback_finished"], 10,
                         "playback_finished on the bus")
    assert fleet.loud_frames[sid] > 10  # the microphone's speech reached the bus
    assert fleet.playback[sid] == ["playback_started", "playback_finished"]
    assert audio.loud_seconds() > 0.4  # reply (and tones) reached the speaker
    text = out.getvalue()
    assert "you: what time is it" in text and "assistant: " + "".join(REPLY) in text
    assert "connected (session" in err.getvalue()


async def test_interrupted_flushes_playback_at_once(gateway: GatewayProc, bus: Bus) -> None:
    audio = PacedAudio(silence(1.0))
    async with ScriptedFleet(bus, reply_audio_s=8.0) as fleet, \
            live_client(gateway, audio, tones=False) as (client, _out, _err):
        await eventually(lambda: client._session is not None, 10, "a session")
        await client._session.send(TextInput(text="talk"))
        await eventually(lambda: client.playback.playing, 10, "the reply to start playing")
        await asyncio.sleep(0.3)
        sid = client._session.session_id
        await bus.cancel(sid, fleet.turns[-1], "barge_in")
        await eventually(lambda: not client.playback.playing, 2, "playback to stop")
        played = client.playback.played
        await asyncio.sleep(0.3)
        assert client.playback.played == played and client.playback.queued == 0
        await eventually(lambda: fleet.playback.get(sid, [])[-1:] == ["playback_finished"], 5, "playback_finished")
    assert played < 2 * 22050  # far less than the 8 s reply


async def test_cli_reconnects_when_the_gateway_restarts(own_gateway: GatewayProc, bus: Bus, tmp_path: Path) -> None:
    gateway = own_gateway
    env = child_env(gateway.env)
    env.update(VF_CLIENT_RECONNECT_MAX_S="1", VF_CLIENT_TOKEN=gateway.token())
    errlog, outlog = tmp_path / "client.err", tmp_path / "client.out"
    proc = start_text_client(gateway, env, errlog, outlog)
    assert proc.stdin is not None

    def connected() -> int:
        return errlog.read_text().count("connected (session")

    try:
        async with ScriptedFleet(bus):
            await asyncio.to_thread(wait_until, lambda: connected() == 1, 15, "the first session", errlog)
            gateway.kill()
            await asyncio.to_thread(wait_until, lambda: "reconnecting" in errlog.read_text(), 10,
                                    "the client to notice", errlog)
            await asyncio.sleep(1.0)  # the gateway stays down for a while
            await asyncio.to_thread(gateway.start)
            await asyncio.to_thread(wait_until, lambda: connected() == 2, 20, "a new session", errlog)
            proc.stdin.write("what time is it\n")
            proc.stdin.flush()
            await asyncio.to_thread(wait_until, lambda: "assistant: " + "".join(REPLY) in outlog.read_text(),
                                    10, "the reply on the new session", errlog)
        proc.stdin.write("/quit\n")
        proc.stdin.flush()
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdin.close()
    log = errlog.read_text()
    sessions = [line.split("session ")[1].split(")")[0] for line in log.splitlines() if "connected (session" in line]
    assert len(set(sessions)) == 2 and "Traceback" not in log


def start_text_client(gateway: GatewayProc, env: dict[str, str], errlog: Path, outlog: Path) -> subprocess.Popen[str]:
    """``python -m audio_client --text-only`` with stdin to type into and its output in files."""
    with open(errlog, "w") as err, open(outlog, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "audio_client", "--gateway", gateway.http, "--text-only"],
                                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err, text=True)


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; client said:\n{log.read_text()}")
        time.sleep(0.05)


def test_missing_audio_device_is_a_clear_message(tmp_path: Path) -> None:
    pytest.importorskip("pyaudio", reason="PyAudio is not installed (the 'mic' extra)")
    env = child_env(dict(os.environ))
    env["HOME"] = str(tmp_path)  # no ~/.asoundrc: only the machine's own devices
    base = [sys.executable, "-m", "audio_client", "--gateway", "ws://127.0.0.1:9", "--token", "t"]
    done = subprocess.run([*base, "--input-device", "no-such-microphone"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "no microphone" in done.stderr and "Traceback" not in done.stderr
    listing = subprocess.run([*base, "--list-devices"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=30)
    assert listing.returncode == 0 and ("No audio devices found" in listing.stdout or "name" in listing.stdout)
