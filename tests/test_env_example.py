"""`.env.example` lists every setting: it is generated from the settings classes."""

from __future__ import annotations

import subprocess
import sys

from fleet import ROOT


def test_env_example_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, "scripts/env_example.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = (ROOT / ".env.example").read_text()
    for prefix in ("VF_REDIS_URL", "VF_GATEWAY_", "VF_STT_", "VF_LLM_", "VF_TTS_", "VF_TOOLS_", "VF_CLIENT_"):
        assert prefix in text
    assert "PydanticUndefined" not in text
