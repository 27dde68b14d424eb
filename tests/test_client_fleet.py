"""The clients against the whole fleet started as processes: real speech in, real speech out.

gateway + STT + LLM + TTS run as ``python -m ...`` processes with the real
models; the headless CLI and the page (in headless Chromium, fake microphone)
talk to them like a user would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import launch, screenshot, wait_for
from conftest import REDIS_URL, free_port
from fleet import ROOT, Proc, child_env, delete_prefix, wait_for_health, wait_for_log
from speech import say, silence, write_wav

from audio_client import wav
from voicefleet.messages import new_id

pytestmark = [pytest.mark.fleet, pytest.mark.models]

WORKERS = {"stt": "vad_stt_worker", "llm": "llm_orchestrator", "tts": "tts_worker"}
QUESTION = "Hello! How are you today?"


def _missing() -> list[str]:
    missing = [module for module in WORKERS.values() if importlib.util.find_spec(f"{module}.__main__") is None]
    if importlib.util.find_spec("llama_cpp") is None:
        missing.append("llama_cpp")
    return missing


@dataclass
class Fleet:
    http: str
    ws: str
    env: dict[str, str]
    procs: dict[str, Proc]

    def token(self, sub: str = "fleet-user") -> str:
        done = subprocess.run([sys.executable, "-m", "gateway", "token", "--sub", sub], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=30, check=True)
        return done.stdout.strip().splitlines()[-1]

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{p.output()[-2500:]}" for name, p in self.procs.items())


@pytest.fixture(scope="module")
def fleet(redis_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    missing = _missing()
    if missing:
        pytest.skip(f"worker packages not runnable yet: {', '.join(missing)}")
    prefix = f"vftest-{new_id()[:8]}"
    port = free_port()
    logs = tmp_path_factory.mktemp("fleet-logs")
    env = child_env(dict(os.environ))
    env.update(VF_REDIS_URL=REDIS_URL, VF_KEY_PREFIX=prefix, VF_HEALTH_TTL_S="3", PYTHONUNBUFFERED="1",
               VF_GATEWAY_JWT_SECRET=f"test-secret-{prefix}-0123456789abcdef0123456789",
               VF_GATEWAY_REQUIRED_SERVICES="stt,llm,tts")
    procs: dict[str, Proc] = {}
    try:
        procs["gateway"] = Proc(["-m", "gateway", "serve", "--port", str(port)], env, logs / "gateway.log")
        for name, module in WORKERS.items():
            procs[name] = Proc(["-m", module], env, logs / f"{name}.log")
        wait_for_log(procs["gateway"], "Ready: gateway", timeout=30)
        http = f"http://127.0.0.1:{port}"
        wait_for_health(http, {name: 1 for name in WORKERS}, timeout=240)
        yield Fleet(http, f"ws://127.0.0.1:{port}", env, procs)
    finally:
        for proc in procs.values():
            proc.stop()
        delete_prefix(REDIS_URL, prefix)


def test_headless_client_gets_a_spoken_reply_from_the_fleet(fleet: Fleet, tmp_path: Path) -> None:
    infile = write_wav(tmp_path / "question.wav", np.concatenate([silence(0.3), say(QUESTION)]))
    outfile = tmp_path / "reply.wav"
    done = subprocess.run(
        [sys.executable, "-m", "audio_client", "--gateway", fleet.ws, "--token", fleet.token(),
         "--wav", str(infile), "--out", str(outfile), "--json", "--timeout", "60"],
        cwd=ROOT, env=fleet.env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, f"{done.stderr}\n{fleet.logs()}"
    record: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "how are you" in record["transcript"].lower(), record
    assert record["reply"].strip(), record
    assert record["voice_to_voice_ms"] > 0
    for stage in ("transcript", "llm_first_token", "tts_first_audio", "gateway_sent", "client_first_audio"):
        assert stage in record["stages_ms"], record["stages_ms"]
    reply = wav.read_wav(outfile, rate=record["sample_rate"])
    assert len(reply) > 0.3 * record["sample_rate"] and wav.speech_end(reply, record["sample_rate"]) is not None


def test_page_talks_to_the_fleet_in_chromium(fleet: Fleet, tmp_path: Path) -> None:
    speech = np.concatenate([silence(2.5), say(QUESTION), silence(4.0)])
    driver = launch(write_wav(tmp_path / "question.wav", speech), tmp_path / "profile")
    try:
        driver.get(f"{fleet.http}/?token={fleet.token('page-user')}")
        driver.find_element("id", "mic").click()
        wait_for(lambda: driver.execute_script("return window.vf.status") == "connected", 15, "a connection",
                 driver)

        def transcript() -> str:
            return str(driver.execute_script(
                "return Array.from(document.querySelectorAll('.bubble.user:not(.partial) .text'))"
                ".map(e => e.textContent).join('|')"))

        wait_for(lambda: "how are you" in transcript().lower(), 40, f"the transcript\n{fleet.logs()}", driver)
        wait_for(lambda: driver.execute_script("return window.vf.stats.samplesScheduled") > 4000, 40,
                 f"reply audio\n{fleet.logs()}", driver)
        wait_for(lambda: driver.execute_script("return window.vf.stats.latencyShown") >= 1, 10,
                 "the latency breakdown", driver)
        reply = driver.execute_script(
            "return Array.from(document.querySelectorAll('.bubble.assistant .text')).map(e => e.textContent).join(' ')")
        assert str(reply).strip()
        screenshot(driver, "browser-fleet")
    finally:
        driver.quit()
