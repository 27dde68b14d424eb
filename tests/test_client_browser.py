"""The page in a real headless Chromium, its microphone fed from a WAV of real speech.

The gateway and Redis are real; the workers' part is scripted on the bus
(:class:`client_support.ScriptedFleet` finds the end of the page's speech by
energy and answers with a transcript, reply text and reply audio). The
full-fleet version of this test is in tests/test_client_fleet.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from browser import launch, screenshot, wait_for
from client_support import REPLY, TRANSCRIPT, FleetThread, GatewayProc, gateway_env, private_prefix
from conftest import REDIS_URL, free_port
from speech import say, silence, write_wav

from voicefleet.messages import Notice
from voicefleet.settings import BusSettings

pytestmark = [pytest.mark.browser, pytest.mark.fleet]


@pytest.fixture(scope="module")
def settings(redis_available: None) -> Iterator[BusSettings]:
    with private_prefix(REDIS_URL) as settings:
        yield settings


@pytest.fixture(scope="module")
def gateway(settings: BusSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    gw = GatewayProc(gateway_env(settings), free_port(), tmp_path_factory.mktemp("gw") / "gateway.log",
                     extra={"VF_GATEWAY_DEV_SIGNIN": "true"}).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("chromium")
    # Leading silence covers sign-in and connection; the trailing silence ends the turn.
    speech = np.concatenate([silence(2.5), say("What time is it?"), silence(3.0)])
    fake_mic = write_wav(folder / "question.wav", speech)
    browser = launch(fake_mic, folder / "profile")
    try:
        yield browser
    finally:
        browser.quit()


def vf(driver: Any, path: str) -> Any:
    return driver.execute_script(f"return window.vf.{path}")


def text_of(driver: Any, css: str) -> str:
    return str(driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent).join('|')", css))


def test_page_talks_shows_transcript_plays_reply_and_latency(
    gateway: GatewayProc, settings: BusSettings, driver: Any
) -> None:
    with FleetThread(settings, reply_audio_s=0.8) as fleet:
        driver.get(f"{gateway.http}/?token={gateway.token('pat')}")
        wait_for(lambda: driver.execute_script("return !document.getElementById('talk').hidden"), 10,
                 "the conversation view", driver)
        assert "token=" not in driver.current_url  # the token is taken out of the address bar
        driver.find_element("id", "mic").click()
        wait_for(lambda: vf(driver, "status") == "connected", 10, "a connection", driver)
        sid = vf(driver, "sessionId")
        assert sid

        # The fake microphone's speech goes through the worklet, the WebSocket and the gateway...
        wait_for(lambda: fleet.loud_frames.get(sid, 0) > 10, 20, "speech frames on the bus", driver)
        # ...the scripted recognizer answers, and the page shows it and plays the reply.
        wait_for(lambda: TRANSCRIPT in text_of(driver, ".bubble.user:not(.partial) .text"), 20,
                 "the transcript on the page", driver)
        wait_for(lambda: "".join(REPLY) in text_of(driver, ".bubble.assistant .text"), 10, "the reply text", driver)
        wait_for(lambda: vf(driver, "stats.samplesScheduled") >= int(0.8 * 22050) - 10, 10,
                 "reply audio scheduled for playback", driver)
        wait_for(lambda: vf(driver, "stats.latencyShown") >= 1, 10, "the latency breakdown", driver)
        stages = driver.execute_script(
            "return Array.from(document.querySelectorAll('.latency:not([hidden]) .wf-row')).map(r => r.dataset.stage)")
        assert stages[0] == "speech_end" and "transcript" in stages and stages[-1] == "client_first_audio"
        assert "Voice to voice:" in text_of(driver, ".latency .v2v")
        wait_for(lambda: fleet.playback.get(sid, [])[-2:] == ["playback_started", "playback_finished"], 10,
                 "playback_started/finished from the page", driver)

        # Frames are 40 ms of 16 kHz PCM16, whatever the AudioContext's own rate.
        frames = fleet.call(_frame_sizes, sid)
        assert frames and set(frames) == {1280}

        # Typed text makes a turn too.
        box = driver.find_element("id", "composer-input")
        box.send_keys("hello there\n")
        wait_for(lambda: len(fleet.turns) >= 2, 10, "the typed turn", driver)
        wait_for(lambda: vf(driver, "stats.latencyShown") >= 2, 10, "the typed turn's latency", driver)
        assert "hello there" in text_of(driver, ".bubble.user .text")
        assert "Text to voice:" in text_of(driver, ".latency .v2v")
        shot = screenshot(driver, "browser-conversation")
        driver.set_window_size(390, 844)  # a phone
        screenshot(driver, "browser-phone")
        driver.set_window_size(900, 1200)
    assert shot.stat().st_size > 10_000


async def _frame_sizes(bus: Any, sid: str) -> list[int]:
    entries = await bus.read(bus.keys.audio(sid), "0", block_ms=10, count=1000)
    return [len(e.message.audio) for e in entries if e.message is not None and e.message.type == "audio_frame"][:50]


def type_first(driver: Any, gateway: GatewayProc, text: str) -> str:
    """Open the page and type ``text`` (no microphone: typing connects by itself); the session id."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    driver.get(f"{gateway.http}/?token={gateway.token('pat')}")
    # On a loaded machine the page may still be laying out: type once the box takes keys.
    box = WebDriverWait(driver, 10).until(expected_conditions.element_to_be_clickable(("id", "composer-input")))
    box.send_keys(f"{text}\n")
    wait_for(lambda: vf(driver, "status") == "connected", 10, "a connection", driver)
    return str(vf(driver, "sessionId"))


def test_barge_in_flushes_the_page_playback(gateway: GatewayProc, settings: BusSettings, driver: Any) -> None:
    with FleetThread(settings, reply_audio_s=8.0) as fleet:
        sid = type_first(driver, gateway, "tell me a long story")
        wait_for(lambda: fleet.playback.get(sid, [])[-1:] == ["playback_started"], 10, "playback", driver)
        assert driver.execute_script("return !document.getElementById('stop').hidden")
        fleet.call(lambda bus, s, t: bus.cancel(s, t, "barge_in"), sid, fleet.turns[-1])
        wait_for(lambda: fleet.playback.get(sid, [])[-1:] == ["playback_finished"], 3,
                 "the page to flush its playback at once", driver)
        assert "interrupted" in vf(driver, "events")
        assert driver.execute_script("return document.getElementById('stop').hidden")


def test_refused_token_returns_to_sign_in_and_dev_sign_in_works(gateway: GatewayProc, driver: Any) -> None:
    driver.get(f"{gateway.http}/?token=not-a-real-token")
    mic = driver.find_element("id", "mic")
    wait_for(lambda: mic.is_displayed() and mic.is_enabled(), 10, "the page ready to talk", driver)
    mic.click()
    wait_for(lambda: driver.execute_script("return !document.getElementById('signin').hidden"), 10,
             "the sign-in view", driver)
    assert "refused the token" in text_of(driver, "#signin-error")
    # This gateway allows development sign-in, so the page offers it.
    assert driver.execute_script("return !document.getElementById('dev-form').hidden")
    screenshot(driver, "browser-signin")
    driver.find_element("id", "dev-name").send_keys("dev_user\n")
    wait_for(lambda: driver.execute_script("return !document.getElementById('talk').hidden"), 10,
             "the conversation view", driver)
    driver.find_element("id", "mic").click()
    wait_for(lambda: vf(driver, "status") == "connected", 10, "a connection with the minted token", driver)


def test_the_page_resumes_its_session_after_a_drop(gateway: GatewayProc, settings: BusSettings, driver: Any) -> None:
    with FleetThread(settings, reply_audio_s=0.5) as fleet:
        sid = type_first(driver, gateway, "hello")
        wait_for(lambda: "".join(REPLY) in text_of(driver, ".bubble.assistant .text"), 10, "the reply", driver)
        driver.execute_script("window.vf.drop()")
        # While the page is away (it waits half a second before reconnecting), something happens.
        fleet.call(lambda bus, s: bus.emit(Notice(session_id=s, code="test", message="While you were away.")), sid)
        wait_for(lambda: vf(driver, "resumed") and vf(driver, "status") == "connected", 10, "the resumed session",
                 driver)
        assert vf(driver, "sessionId") == sid
        wait_for(lambda: "notice" in vf(driver, "events"), 10, "the notice sent while the page was away", driver)
        assert vf(driver, "events").count("notice") == 1
        # The conversation goes on in the same session.
        driver.find_element("id", "composer-input").send_keys("and again\n")
        wait_for(lambda: len(fleet.turns) >= 2, 10, "the next turn on the resumed session", driver)
