"""The systemd units (deploy/systemd): valid for systemd itself, one per service and a target that wants them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import WORKERS, setting_names
from fleet import ROOT

UNITS = ROOT / "deploy" / "systemd"
PYTHON = "/opt/voicefleet/.venv/bin/python"


def test_one_unit_per_service_and_a_target_that_wants_them() -> None:
    names = {p.name for p in UNITS.iterdir()}
    assert names == {"voicefleet.target", "voicefleet-gateway.service", *(f"voicefleet-{k}@.service" for k in WORKERS)}
    wants = " ".join(re.findall(r"^Wants=(.*)$", (UNITS / "voicefleet.target").read_text(), flags=re.M))
    for kind in WORKERS:
        text = (UNITS / f"voicefleet-{kind}@.service").read_text()
        assert f"ExecStart={PYTHON} -m {WORKERS[kind][0]}\n" in text
        assert f"voicefleet-{kind}@1.service" in wants
    assert "voicefleet-gateway.service" in wants and "redis-server.service" in wants


def test_units_set_only_settings_that_exist() -> None:
    for unit in UNITS.iterdir():
        for line in re.findall(r"^Environment=(.*)$", unit.read_text(), flags=re.M):
            for name in re.findall(r"\b(VF_[A-Z0-9_]+)=", line):
                assert name in setting_names(), f"{unit.name}: {name}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    # systemd checks that ExecStart's program exists: point it at this interpreter.
    for unit in UNITS.iterdir():
        (tmp_path / unit.name).write_text(unit.read_text().replace(PYTHON, sys.executable))
    instances = [str(tmp_path / f"voicefleet-{kind}@1.service") for kind in WORKERS]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "voicefleet.target"),
         str(tmp_path / "voicefleet-gateway.service"), *instances],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "voicefleet" not in result.stderr, result.stderr  # no warning about our units (unknown keys...)
