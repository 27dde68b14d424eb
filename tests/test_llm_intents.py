"""The explicit-command parser: commands found without a model, everything else left alone."""

from __future__ import annotations

from typing import Any

import pytest

from llm_orchestrator.intents import parse
from llm_orchestrator.numbers import normalize_amounts, parse_duration, spoken_duration, words_to_digits


@pytest.mark.parametrize(
    ("text", "tool", "args"),
    [
        ("Take a note that I need to buy milk.", "notes.add", {"text": "I need to buy milk"}),
        ("Please make a note to call mom", "notes.add", {"text": "call mom"}),
        ("Note that the meeting moved to Friday.", "notes.add", {"text": "the meeting moved to Friday"}),
        ("Write down that the code is 1234", "notes.add", {"text": "the code is 1234"}),
        ("Hey Jarvis, read me my notes please.", "notes.list", {}),
        ("What are my notes?", "notes.list", {}),
        ("Search my notes for milk", "notes.search", {"query": "milk"}),
        ("Read note three.", "notes.read", {"id": "3"}),
        ("Read me note number 12", "notes.read", {"id": "12"}),
        ("Read the note about the garage.", "notes.read", {"query": "the garage"}),
        ("Read my last note", "notes.read", {}),
        ("Delete note 2.", "notes.delete", {"id": "2"}),
        ("Delete the note about milk.", "notes.delete", {"query": "milk"}),
        ("Remember that my sister is called Anna.", "memory.remember", {"text": "my sister is called Anna"}),
        ("What do you remember about me?", "memory.list", {}),
        ("What do you know about me?", "memory.list", {}),
        ("Forget that my sister is called Anna.", "memory.forget", {"query": "my sister is called Anna"}),
        ("Find the file about the tax return.", "files.search", {"query": "the tax return"}),
        ("Could you search my documents for the lease?", "files.search", {"query": "the lease"}),
        ("Search the web for the weather in Paris.", "web.search", {"query": "the weather in Paris"}),
        ("Look up pasta recipes online.", "web.search", {"query": "pasta recipes"}),
        ("Set a timer for 5 minutes for pasta.", "timer.set", {"seconds": 300, "label": "pasta"}),
        ("Set a timer for five minutes.", "timer.set", {"seconds": 300}),
        ("Set a ten minute timer for the eggs.", "timer.set", {"seconds": 600, "label": "eggs"}),
        ("Set a pasta timer for twenty-five minutes", "timer.set", {"seconds": 1500, "label": "pasta"}),
        ("Can you set a timer for an hour and a half?", "timer.set", {"seconds": 5400}),
        ("Start a timer for 1 hour and 30 minutes called roast", "timer.set", {"seconds": 5400, "label": "roast"}),
        ("Set a timer for ninety seconds", "timer.set", {"seconds": 90}),
        ("Remind me in 10 minutes to check the oven.", "timer.set", {"seconds": 600, "label": "check the oven"}),
        ("Cancel the timer.", "timer.cancel", {}),
        ("Cancel the pasta timer.", "timer.cancel", {"label": "pasta"}),
        ("Stop the timer for pasta", "timer.cancel", {"label": "pasta"}),
        ("Cancel all timers", "timer.cancel", {"all": True}),
        ("How much time is left on the pasta timer?", "timer.list", {}),
        ("What timers are running?", "timer.list", {}),
        ("What time is it?", "time.now", {}),
        ("What's the time?", "time.now", {}),
        ("What's the date today?", "time.now", {}),
    ],
)
def test_commands(text: str, tool: str, args: dict[str, Any]) -> None:
    intent = parse(text)
    assert intent is not None and (intent.tool, intent.args) == (tool, args)
    assert intent.ask is None


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "Do you remember my birthday?",
        "Tell me a story about a timer.",
        "I need to take a note later.",
        "How do I search the web safely?",
        "Set an alarm for seven",
        "",
    ],
)
def test_not_commands(text: str) -> None:
    assert parse(text) is None


def test_a_timer_without_a_duration_asks_for_one() -> None:
    intent = parse("Set a timer.")
    assert intent is not None and intent.tool == "timer.set" and intent.ask


@pytest.mark.parametrize(
    ("words", "digits"),
    [
        ("five minutes", "5 minutes"),
        ("twenty-five", "25"),
        ("one hundred and twenty seconds", "120 seconds"),
        ("a hundred", "100"),
        ("forty two", "42"),
        ("someone", "someone"),
    ],
)
def test_words_to_digits(words: str, digits: str) -> None:
    assert words_to_digits(words) == digits


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5 minutes", 300),
        ("half an hour", 1800),
        ("an hour and a half", 5400),
        ("one and a half minutes", 90),
        ("2 min 30 s", 150),
        ("1.5 hours", 5400),
        ("a couple of minutes", 120),
        ("no duration here", None),
    ],
)
def test_durations(text: str, seconds: int | None) -> None:
    found = parse_duration(normalize_amounts(text))
    assert (found[0] if found else None) == seconds


def test_spoken_duration() -> None:
    assert spoken_duration(5400) == "1 hour and 30 minutes"
    assert spoken_duration(61) == "1 minute and 1 second"
