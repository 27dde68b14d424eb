"""Pure logic of the tools worker: spoken phrases, the clock, matching, settings."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fleet import ROOT

from tools_worker.clock import Clock
from tools_worker.matching import Scored, clear_winner, keyword_score
from tools_worker.phrases import duration, duration_adjective, join
from tools_worker.registry import ToolError
from tools_worker.settings import PROJECT_FILES, ToolsSettings
from tools_worker.timers import Timer, split_reminder
from tools_worker.web import DdgsProvider, SearxngProvider, choose_provider
from voicefleet.catalogue import TimeArgs
from voicefleet.messages import ToolCall


def test_durations_and_lists_read_naturally() -> None:
    assert duration(300) == "5 minutes"
    assert duration(1) == "1 second"
    assert duration(5430) == "1 hour, 30 minutes and 30 seconds"
    assert duration_adjective(300) == "5 minute"
    assert join(["a", "b", "c"]) == "a, b and c" and join(["a"]) == "a" and join([]) == ""
    assert Timer("t", "u", "pasta", 300, 0).done_message() == "Your 5 minute pasta timer is done."
    assert Timer("t", "u", "", 90, 0).name == "1 minute 30 second timer"


@pytest.mark.parametrize(
    ("label", "said", "name", "done"),
    [
        ("pasta", None, "pasta timer", "Your 30 minute pasta timer is done."),
        ("check the oven", None, "reminder to check the oven", "Time to check the oven."),
        ("to call mum", None, "reminder to call mum", "Time to call mum."),
        ("remind me to stretch", None, "reminder to stretch", "Time to stretch."),
        ("call my mother", None, "reminder to call your mother", "Time to call your mother."),
        ("stretch", True, "reminder to stretch", "Time to stretch."),  # the caller's word wins
        ("check the oven", False, "check the oven timer", "Your 30 minute check the oven timer is done."),
        ("", True, "30 minute timer", "Your 30 minute timer is done."),  # nothing to be reminded of
    ],
)
def test_a_timer_for_a_thing_or_a_reminder_to_do_something(label: str, said: bool | None, name: str,
                                                            done: str) -> None:
    text, reminder = split_reminder(label, said)
    timer = Timer("t", "u", text, 1800, 0, reminder)
    assert (timer.name, timer.done_message()) == (name, done)


async def test_time_is_spoken_in_the_configured_zone() -> None:
    def fixed(tz: tzinfo | None) -> datetime:
        return datetime(2026, 11, 23, 20, 5, tzinfo=ZoneInfo("UTC")).astimezone(tz)

    outcome = await Clock("America/New_York", now=fixed).tell(ToolCall(name="time.now"), TimeArgs())
    assert outcome.text == "It's 3:05 PM on Monday, November 23."
    assert outcome.data is not None and outcome.data.model_dump()["timezone"] == "America/New_York"
    midnight = await Clock("UTC", now=lambda tz: datetime(2026, 1, 1, 0, 7, tzinfo=tz)).tell(
        ToolCall(name="time.now"), TimeArgs())
    assert midnight.text == "It's 12:07 AM on Thursday, January 1."


async def test_time_elsewhere_names_the_place_and_the_day_when_it_differs() -> None:
    def fixed(tz: tzinfo | None) -> datetime:
        return datetime(2026, 11, 23, 12, 5, tzinfo=ZoneInfo("UTC")).astimezone(tz)

    clock = Clock("Europe/Paris", now=fixed)
    asked = ToolCall(name="time.now")
    tokyo = await clock.tell(asked, TimeArgs(timezone="Asia/Tokyo"))
    assert tokyo.text == "It's 9:05 PM in Tokyo."
    assert tokyo.data is not None and tokyo.data.model_dump()["place"] == "Tokyo"
    # A city alone, any case, with spaces: the zone is found.
    assert (await clock.tell(asked, TimeArgs(timezone="new york"))).text == "It's 7:05 AM in New York."
    assert (await clock.tell(asked, TimeArgs(timezone="UTC"))).text == "It's 12:05 PM UTC."
    home = Clock("America/Los_Angeles", now=fixed)  # Monday 4:05 AM at home, already Tuesday at UTC+14
    kiritimati = await home.tell(asked, TimeArgs(timezone="Pacific/Kiritimati"))
    assert kiritimati.text == "It's 2:05 AM on Tuesday in Kiritimati."
    with pytest.raises(ToolError, match="I don't know a time zone called Mars/Olympus"):
        await clock.tell(asked, TimeArgs(timezone="Mars/Olympus"))


def test_matching_tolerates_transcription_slips() -> None:
    assert keyword_score("dentist appointment", "Call the dentist about the appointment") == 1.0
    assert keyword_score("dentist", "Call the dentis on Monday") == 1.0  # one letter lost
    assert keyword_score("the", "anything") == 0.0  # stop words alone match nothing
    a, b = Scored(0.9, "x"), Scored(0.85, "y")
    assert clear_winner([a, b]) is None and clear_winner([a]) == "x"
    assert clear_winner([Scored(0.9, "x"), Scored(0.5, "y")]) == "x"
    assert np.isclose(keyword_score("milk eggs", "buy milk"), 0.5)


def test_settings_split_folders_and_check_the_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VF_TOOLS_SEARCH_DIRS", "/srv/docs, ~/notes,,")
    monkeypatch.setenv("VF_TOOLS_TIMEZONE", "Europe/Paris")
    settings = ToolsSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.search_dirs == [Path("/srv/docs"), Path("~/notes").expanduser()]
    monkeypatch.setenv("VF_TOOLS_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError, match="time zone"):
        ToolsSettings(_env_file=None)  # type: ignore[call-arg]


def test_file_search_covers_documents_and_the_project_folder_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VF_TOOLS_SEARCH_DIRS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert (PROJECT_FILES / "README.txt").is_file()  # committed, so a checkout always has the folder
    assert ToolsSettings(_env_file=None).search_dirs == [PROJECT_FILES]  # type: ignore[call-arg]
    (tmp_path / "Documents").mkdir()
    assert ToolsSettings(_env_file=None).search_dirs == [tmp_path / "Documents", PROJECT_FILES]  # type: ignore[call-arg]
    monkeypatch.setenv("VF_TOOLS_SEARCH_DIRS", "")  # set but empty: file search is off
    assert ToolsSettings(_env_file=None).search_dirs == []  # type: ignore[call-arg]

    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("VF_TOOLS_SEARCH_DIRS", None)
    printed = subprocess.run([sys.executable, "-m", "tools_worker", "folders"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60, check=True)
    assert printed.stdout.splitlines() == [str(tmp_path / "Documents"), str(PROJECT_FILES)]


async def test_the_web_provider_setting_chooses() -> None:
    assert choose_provider("off", "http://127.0.0.1:1", 2.0) is None
    chosen = [choose_provider(kind, url, 2.0) for kind, url in
              (("auto", ""), ("auto", "http://127.0.0.1:1"), ("ddgs", "http://127.0.0.1:1"), ("searxng", "http://x"))]
    assert [type(p) for p in chosen] == [DdgsProvider, SearxngProvider, DdgsProvider, SearxngProvider]
    for provider in chosen:
        assert provider is not None
        await provider.close()
    with pytest.raises(ValueError, match="needs VF_TOOLS_SEARXNG_URL"):
        ToolsSettings(_env_file=None, web_provider="searxng")  # type: ignore[call-arg]
