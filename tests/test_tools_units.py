"""Pure logic of the tools worker: spoken phrases, the clock, matching, settings."""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tools_worker.clock import Clock, TimeArgs
from tools_worker.matching import Scored, clear_winner, keyword_score
from tools_worker.phrases import duration, duration_adjective, join
from tools_worker.settings import ToolsSettings
from tools_worker.timers import Timer
from voicefleet.messages import ToolCall


def test_durations_and_lists_read_naturally() -> None:
    assert duration(300) == "5 minutes"
    assert duration(1) == "1 second"
    assert duration(5430) == "1 hour, 30 minutes and 30 seconds"
    assert duration_adjective(300) == "5 minute"
    assert join(["a", "b", "c"]) == "a, b and c" and join(["a"]) == "a" and join([]) == ""
    assert Timer("t", "u", "pasta", 300, 0).done_message() == "Your 5 minute pasta timer is done."
    assert Timer("t", "u", "", 90, 0).name == "1 minute 30 second timer"


async def test_time_is_spoken_in_the_configured_zone() -> None:
    def fixed(tz: tzinfo | None) -> datetime:
        return datetime(2026, 11, 23, 20, 5, tzinfo=ZoneInfo("UTC")).astimezone(tz)

    outcome = await Clock("America/New_York", now=fixed).tell(ToolCall(name="time.now"), TimeArgs())
    assert outcome.text == "It's 3:05 PM on Monday, November 23."
    assert outcome.data["timezone"] == "America/New_York"
    midnight = await Clock("UTC", now=lambda tz: datetime(2026, 1, 1, 0, 7, tzinfo=tz)).tell(
        ToolCall(name="time.now"), TimeArgs())
    assert midnight.text == "It's 12:07 AM on Thursday, January 1."


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
