"""Notes and memories survive a restart of the real ``python -m tools_worker`` process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fleet import ROOT, Proc, child_env, wait_for_log
from tools_harness import call

from voicefleet.bus import Bus

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(180)]


def _start(env: dict[str, str], log: Path) -> Proc:
    proc = Proc(["-m", "tools_worker"], env, log)
    wait_for_log(proc, "Ready: tools", timeout=90)
    return proc


async def test_notes_and_memories_survive_a_restart(bus: Bus, fleet_env: dict[str, str], tmp_path: Path) -> None:
    env = child_env({**fleet_env, "VF_TOOLS_DATA_DIR": str(tmp_path / "data"), "VF_TOOLS_SEARCH_DIRS": ""})
    proc = _start(env, tmp_path / "tools-1.log")
    try:
        assert (await call(bus, "notes.add", {"text": "Pick up the dry cleaning"})).ok
        assert (await call(bus, "memory.remember", {"text": "The user likes jazz"})).ok
        timer = await call(bus, "timer.set", {"seconds": 3600, "label": "bread"})
        assert timer.ok
    finally:
        proc.kill(signal.SIGKILL)  # no clean shutdown: nothing committed may be lost
        proc.stop()

    proc = _start(env, tmp_path / "tools-2.log")
    try:
        notes = await call(bus, "notes.list")
        assert [n["text"] for n in notes.data["notes"]] == ["Pick up the dry cleaning"]
        memories = await call(bus, "memory.list")
        assert [m["text"] for m in memories.data["memories"]] == ["The user likes jazz"]
        timers = await call(bus, "timer.list")
        assert [t["label"] for t in timers.data["timers"]] == ["bread"]
    finally:
        proc.stop()

    exported = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tools_worker", "export", "--user", "alice"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    data = json.loads(exported.stdout)
    assert data["user"] == "alice"
    assert [n["text"] for n in data["notes"]] == ["Pick up the dry cleaning"]
    assert [m["text"] for m in data["memories"]] == ["The user likes jazz"]
