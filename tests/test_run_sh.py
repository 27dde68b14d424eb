"""The two scripts an operator uses: ./run.sh starts the whole fleet, ./kill_all.sh stops it.

The headless client talks to the fleet in between, with real speech.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import free_port
from fleet import ROOT
from speech import say, silence, write_wav

pytestmark = [pytest.mark.fleet, pytest.mark.models]


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie whose parent has not reaped it yet is already stopped.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(")")[-1].split()[0] != "Z"


def test_run_sh_then_kill_all_sh(fleet_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    env = dict(fleet_env)
    env.update(VF_RUN_DIR=str(tmp_path / "run"), VF_GATEWAY_PORT=str(port), VF_TOOLS_DATA_DIR=str(tmp_path / "data"),
               VF_TOOLS_SEARCH_DIRS=str(tmp_path / "docs"))
    (tmp_path / "docs").mkdir()
    try:
        started = subprocess.run(["./run.sh", "--no-setup"], cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=400)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "the assistant is running" in started.stdout
        plain = re.sub(r"\x1b\[[0-9;]*m|==> ", "", started.stdout)
        assert f"file search covers (add folders with VF_TOOLS_SEARCH_DIRS in .env, comma-separated):\n" \
               f"    {tmp_path / 'docs'}\n" in plain
        token = re.search(r"token:\s+(\S+)", started.stdout).group(1)
        pids = {p.stem: int(p.read_text()) for p in (tmp_path / "run").glob("*.pid")}
        assert {"gateway", "stt-1", "llm-1", "tts-1", "tools-1"} <= set(pids)

        question = write_wav(tmp_path / "q.wav", np.concatenate([silence(0.3), say("What time is it?")]))
        reply = tmp_path / "reply.wav"
        talk = subprocess.run(
            [f"{ROOT}/.venv/bin/python", "-m", "audio_client", "--gateway", f"ws://127.0.0.1:{port}",
             "--token", token, "--wav", str(question), "--out", str(reply), "--json"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
        )
        assert talk.returncode == 0, talk.stdout + talk.stderr
        turn = json.loads(talk.stdout.strip().splitlines()[-1])
        assert "time" in turn["transcript"].lower()
        assert turn["reply"]
        from audio_client.wav import read_wav

        audio = read_wav(reply)
        assert np.abs(audio.astype(np.int32)).max() > 1000  # a spoken reply, not silence
    finally:
        stopped = subprocess.run(["./kill_all.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert not [name for name, pid in pids.items() if running(pid)]
    assert not list((tmp_path / "run").glob("*.pid"))
    again = subprocess.run(["./kill_all.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "fleet stopped" in again.stdout


def test_a_killed_worker_is_restarted_by_the_supervisor(fleet_env: dict[str, str], tmp_path: Path) -> None:
    # A small fleet (the gateway and one TTS worker) is enough to see supervisord at work.
    port, run = free_port(), tmp_path / "run"
    operator = "operator-token-for-the-supervisor-test"
    env = dict(fleet_env)
    env.update(VF_RUN_DIR=str(run), VF_GATEWAY_PORT=str(port), VF_RUN_STT="0", VF_RUN_LLM="0", VF_RUN_TOOLS="0",
               VF_GATEWAY_REQUIRED_SERVICES="tts", VF_GATEWAY_OPERATOR_TOKEN=operator,
               VF_TOOLS_SEARCH_DIRS=str(tmp_path))

    def tts_pids() -> list[int]:
        health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2,
                           headers={"authorization": f"Bearer {operator}"}).json()
        return [i["pid"] for i in health["services"]["tts"].get("instances", []) if i.get("ready")]

    pids: dict[str, int] = {}
    back: list[int] = []
    try:
        started = subprocess.run(["./run.sh", "--no-setup"], cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        pids = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
        assert {"supervisord", "gateway", "tts-1"} <= set(pids)
        assert tts_pids() == [pids["tts-1"]]

        os.kill(pids["tts-1"], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            back = [pid for pid in tts_pids() if pid != pids["tts-1"]]
            if back:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no new TTS worker in /v1/health; {(run / 'supervisord.log').read_text()}")
        log = (run / "supervisord.log").read_text()
        assert "tts-1" in log and "SIGKILL" in log  # the crash and the restart are logged
        assert f"spawned: 'tts-1' with pid {back[0]}" in log
    finally:
        stopped = subprocess.run(["./kill_all.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    everything = [*pids.values(), *([back[0]] if back else [])]
    assert not [pid for pid in everything if running(pid)]
    assert not list(run.glob("*.pid"))
