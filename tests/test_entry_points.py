"""Every entry point answers --help without loading a model or needing Redis."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fleet import ROOT

MODULES = ["gateway", "vad_stt_worker", "llm_orchestrator", "tts_worker", "tools_worker", "audio_client",
           "voicefleet.models", "wyoming_adapter", "voicefleet.health", "llm_orchestrator.openai_server"]
SCRIPTS = ["./run.sh", "./kill_all.sh", "scripts/setup.sh"]


@pytest.mark.parametrize("module", MODULES)
def test_python_entry_points_have_help(module: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin", "VF_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


@pytest.mark.parametrize("script", SCRIPTS)
def test_shell_scripts_have_help(script: str) -> None:
    result = subprocess.run([script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr


def test_token_command_prints_the_token_last(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin", "VF_GATEWAY_JWT_SECRET": "a-secret-long-enough-for-hs256-0123456789"}
    result = subprocess.run([sys.executable, "-m", "gateway", "token", "--sub", "alice", "--ttl", "60"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0
    assert result.stdout.strip().splitlines()[-1].count(".") == 2  # header.payload.signature
