"""The code style gates run with the tests: ruff everywhere, mypy --strict on the shared package."""

from __future__ import annotations

import subprocess
import sys

from fleet import ROOT


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_mypy_strict_on_the_shared_package() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "voicefleet"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
