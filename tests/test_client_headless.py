"""The headless client against the real gateway process, with the workers' part scripted on the bus."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import jwt
import numpy as np
import pytest
from client_support import REPLY, TRANSCRIPT, GatewayProc, ScriptedFleet, gateway_env, private_prefix
from conftest import REDIS_URL, free_port
from fleet import ROOT, child_env
from speech import say, silence, write_wav

from audio_client import wav
from audio_client.headless import HeadlessClient, run_turn
from audio_client.protocol import OptionsRefused, TokenRefused
from voicefleet.bus import Bus
from voicefleet.settings import BusSettings

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def settings(redis_available: None) -> Iterator[BusSettings]:
    with private_prefix(REDIS_URL) as settings:
        yield settings


@pytest.fixture(scope="module")
def gateway(settings: BusSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    gw = GatewayProc(gateway_env(settings), free_port(), tmp_path_factory.mktemp("gw") / "gateway.log").start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
async def bus(settings: BusSettings) -> AsyncIterator[Bus]:
    """The bus under the module gateway's prefix."""
    b = Bus(settings)
    yield b
    await b.close()


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    """Real speech, with a little silence before it, as a microphone would hear it."""
    return np.concatenate([silence(0.3), say("What time is it?")])


def client_cmd(gw: GatewayProc, *args: str) -> list[str]:
    return [sys.executable, "-m", "audio_client", "--gateway", gw.ws, *args]


def run_client(gw: GatewayProc, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(client_cmd(gw, *args), cwd=ROOT, env=child_env(gw.env), capture_output=True,
                          text=True, timeout=timeout)


async def test_run_turn_streams_speech_and_collects_reply_audio_and_timings(
    gateway: GatewayProc, bus: Bus, question: np.ndarray
) -> None:
    async with ScriptedFleet(bus):
        result = await run_turn(gateway.ws, gateway.token(), audio=question, trailing_silence_s=0.6,
                                timeout_s=20)
    assert result.ok, result.to_json()
    assert result.transcript == TRANSCRIPT
    assert result.reply == "".join(REPLY)
    assert result.sample_rate == 16000 and not wav.is_silent(result.audio)
    assert 0.5 <= result.audio_s <= 0.7
    # The end of speech is found in the recording itself, near its real end.
    assert result.speech_end_s is not None
    assert abs(result.speech_end_s - len(question) / 16000) < 0.3
    assert result.voice_to_voice_ms is not None and result.voice_to_voice_ms > 0
    stages = list(result.stages_ms)
    assert stages.index("eot") < stages.index("gateway_sent") < stages.index("client_first_audio")
    assert result.stages_ms["client_first_audio"] == pytest.approx(result.voice_to_voice_ms, abs=50)


async def test_several_turns_on_one_session_keep_their_own_replies(gateway: GatewayProc, bus: Bus) -> None:
    async with ScriptedFleet(bus) as fleet:
        async with HeadlessClient(gateway.ws, gateway.token(), output_sample_rate=24000) as client:
            first = await client.ask("hello", timeout_s=10)
            second = await client.ask("and again", timeout_s=10)
        # Its virtual speaker plays each reply out in real time before the next turn.
        sid = client.session.session_id
        deadline = time.monotonic() + 5
        while len(fleet.playback.get(sid, [])) < 4:
            assert time.monotonic() < deadline, f"playback reports: {fleet.playback.get(sid)}"
            await asyncio.sleep(0.05)
        assert fleet.playback[sid] == ["playback_started", "playback_finished"] * 2
    assert first.ok and second.ok
    assert first.turn_id != second.turn_id and fleet.turns[-2:] == [first.turn_id, second.turn_id]
    # The gateway cancels the finished first turn when the second starts; that late
    # 'interrupted' belongs to the first turn and must not end the second.
    assert not second.interrupted
    assert second.sample_rate == 24000 and not wav.is_silent(second.audio)
    assert second.first_audio_ms is not None and second.voice_to_voice_ms is None


async def test_cli_wav_prints_json_and_saves_a_reply_wav(
    gateway: GatewayProc, bus: Bus, question: np.ndarray, tmp_path: Path
) -> None:
    infile = write_wav(tmp_path / "question.wav", question)
    outfile = tmp_path / "out" / "reply.wav"
    async with ScriptedFleet(bus):
        done = await asyncio.to_thread(
            run_client, gateway, "--token", gateway.token(), "--wav", str(infile), "--out", str(outfile),
            "--json", "--fast", "--trailing-silence", "0.6", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["transcript"] == TRANSCRIPT and record["reply"] == "".join(REPLY)
    assert record["voice_to_voice_ms"] > 0 and "gateway_sent" in record["stages_ms"]
    assert record["saved"] == str(outfile)
    saved = wav.read_wav(outfile)
    assert len(saved) > 8000 and wav.speech_end(saved, 16000) is not None


async def test_cli_text_prints_a_readable_report(gateway: GatewayProc, bus: Bus) -> None:
    async with ScriptedFleet(bus):
        done = await asyncio.to_thread(run_client, gateway, "--token", gateway.token(),
                                       "--text", "what time is it", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    assert "you typed:  what time is it" in done.stdout
    assert "assistant:  It is time for a test." in done.stdout
    assert "first audio:" in done.stdout and "gateway sent audio" in done.stdout


@pytest.mark.parametrize("mode", [["--text", "hi"], ["--text-only"]])
def test_refused_token_is_a_clear_message_and_exit_code_3(gateway: GatewayProc, mode: list[str]) -> None:
    expired = gateway.token(exp=int(time.time()) - 3600)
    done = run_client(gateway, "--token", expired, *mode, timeout=30)
    assert done.returncode == 3
    assert "refused the token" in done.stderr and "expired" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_no_reply_times_out_with_a_clear_message(gateway: GatewayProc) -> None:
    done = run_client(gateway, "--token", gateway.token(), "--text", "anyone there?", "--timeout", "1.5")
    assert done.returncode == 1
    assert "no complete reply within 1.5 s" in done.stderr and "/v1/health" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_gateway_and_bad_input_are_clear(tmp_path: Path) -> None:
    port = free_port()
    env = child_env(dict(os.environ))
    base = [sys.executable, "-m", "audio_client", "--gateway", f"http://127.0.0.1:{port}", "--token", "t"]
    done = subprocess.run([*base, "--text", "hi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 4 and "cannot reach the gateway" in done.stderr
    done = subprocess.run([*base, "--wav", str(tmp_path / "missing.wav")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "no such file" in done.stderr
    assert "Traceback" not in done.stderr


async def test_refusals_raise_typed_errors(gateway: GatewayProc) -> None:
    with pytest.raises(TokenRefused, match="signature"):
        forged = jwt.encode({"sub": "mallory", "exp": int(time.time()) + 60, "aud": "voicefleet",
                             "iss": "voicefleet"}, "not-the-secret-but-long-enough-for-hmac", algorithm="HS256")
        await run_turn(gateway.ws, forged, text="hi")
    with pytest.raises(OptionsRefused, match="1000 Hz"):
        client = HeadlessClient(gateway.ws, gateway.token())
        client.options.sample_rate = 1000
        await client.session.open()
