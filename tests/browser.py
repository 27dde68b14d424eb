"""A real headless Chromium for page tests, with a fake microphone fed from a WAV."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        reason = ("Chromium and chromedriver are needed: `apt-get install chromium chromium-driver` "
                  "(scripts/setup.sh --dev installs them)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return browser, driver


def launch(fake_audio: Path, user_data: Path, width: int = 900, height: int = 1200) -> Any:
    """Chromium driven by Selenium; the fake microphone plays ``fake_audio`` once."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is needed (the 'dev' extra)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver = _chromium()
    options = Options()
    options.binary_location = browser
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_audio}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={user_data}", f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def wait_for(check: Callable[[], Any], timeout: float, what: str, driver: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = ""
            if driver is not None:
                detail = f"\npage state: {driver.execute_script('return JSON.stringify(window.vf)')}"
                detail += "\nconsole: " + "\n".join(e["message"] for e in driver.get_log("browser")[-20:])
            raise AssertionError(f"timed out waiting for {what}{detail}")
        time.sleep(0.1)


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
