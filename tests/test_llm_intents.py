"""The explicit-command parser: commands found without a model, everything else left alone."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ holds the corpora

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


# --- the hassil template layer: how people really say it ------------------------------------------


@pytest.mark.parametrize(
    ("text", "tool", "args"),
    [
        ("Hey Jarvis, um, could you please set a timer for five minutes, thanks.", "timer.set", {"seconds": 300}),
        ("Take a note. Call the dentist on Friday.", "notes.add", {"text": "Call the dentist on Friday"}),
        ("Note to self: call Paul at 2:30, it's urgent.", "notes.add", {"text": "call Paul at 2:30, it's urgent"}),
        ("I'm making pasta. Set a timer for ten minutes.", "timer.set", {"seconds": 600}),
        ("Remind me in half an hour to check the oven.", "timer.set", {"seconds": 1800, "label": "check the oven"}),
        ("Remind me to call mom in 20 minutes.", "timer.set", {"seconds": 1200, "label": "call mom"}),
        ("Cancel all my timers.", "timer.cancel", {"all": True}),
        ("What time is it in Tokyo?", "time.now", {"timezone": "Asia/Tokyo"}),
        ("What's the time in New York right now?", "time.now", {"timezone": "America/New_York"}),
        ("Read me note number twenty one.", "notes.read", {"id": "21"}),
        ("Keep in mind that I prefer metric units.", "memory.remember", {"text": "I prefer metric units"}),
        ("New note. Book the train tickets for Lisbon.", "notes.add", {"text": "Book the train tickets for Lisbon"}),
        ("Find the file about the quarterly budget review.", "files.search", {"query": "the quarterly budget review"}),
    ],
)
def test_people_say_it_many_ways(text: str, tool: str, args: dict[str, Any]) -> None:
    intent = parse(text)
    assert intent is not None and (intent.tool, intent.args) == (tool, args)


@pytest.mark.parametrize(
    ("text", "tool", "args"),
    [
        ("Prends une note : acheter du pain.", "notes.add", {"text": "acheter du pain"}),
        ("Mets un minuteur de dix minutes pour les pâtes.", "timer.set", {"seconds": 600, "label": "pâtes"}),
        ("Rappelle-moi dans une demi-heure de sortir le gâteau.", "timer.set",
         {"seconds": 1800, "label": "sortir le gâteau"}),
        ("Quelle heure est-il à Tokyo ?", "time.now", {"timezone": "Asia/Tokyo"}),
        ("Annule tous les minuteurs.", "timer.cancel", {"all": True}),
        ("Lis-moi la note numéro trois.", "notes.read", {"id": "3"}),
        ("Souviens-toi que je préfère le thé.", "memory.remember", {"text": "je préfère le thé"}),
    ],
)
def test_french(text: str, tool: str, args: dict[str, Any]) -> None:
    intent = parse(text, "fr-FR")
    assert intent is not None and (intent.tool, intent.args) == (tool, args)


@pytest.mark.parametrize(
    "text",
    ["How do I take good notes in class?", "Note how quiet it is today.", "Forget it.", "I forgot my keys again.",
     "What time zone is Chicago in?", "Remember when we went to the beach?"],
)
def test_traps_stay_chat(text: str) -> None:
    assert parse(text) is None


def test_an_unknown_place_is_asked_about() -> None:
    intent = parse("What time is it in Narnia?")
    assert intent is not None and intent.tool == "time.now" and intent.ask and "Narnia" in intent.ask


# --- the second stage (real MiniLM) and the corpus ---------------------------------------------------


@pytest.fixture(scope="module")
def full_parser() -> Any:
    from llm_orchestrator.intents import IntentParser
    from llm_orchestrator.intents.nearest import load_nearest

    return IntentParser(second_stage=load_nearest())


@pytest.mark.models
def test_nearest_template_catches_a_paraphrase(full_parser: Any) -> None:
    text = "can you tell me what you remember about me so far"
    assert parse(text) is None  # no template says it this way
    intent = full_parser.parse(text)
    assert intent is not None and intent.tool == "memory.list" and intent.stage == "nearest"
    assert full_parser.parse("how does Google search actually work") is None


@pytest.mark.models
@pytest.mark.parametrize(
    "corpus",
    ["intents_en.tsv", "intents_heldout_en.tsv", "intents_heldout2_en.tsv", "intents_heldout3_en.tsv", "intents_fr.tsv",
     "intents_heldout_fr.tsv"],
)
def test_corpus(full_parser: Any, corpus: str) -> None:
    """The README's figures: most commands reach their tool, chat almost never reaches one."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.intents import DATA, evaluate

    report = evaluate(full_parser, DATA / corpus)
    assert report["false_calls"] <= 0.02, report["errors"]
    assert report["right"] >= 0.90, report["errors"]


def test_every_template_intent_is_a_catalogue_tool_and_its_calls_validate() -> None:
    """The intent layer maps to the one tool catalogue: its names, and arguments its models accept."""
    from bench.intents import DATA, load
    from llm_orchestrator.intents.parser import LANGUAGES, templates
    from voicefleet.catalogue import CATALOGUE

    for language in LANGUAGES:
        assert set(templates(language).intents.intents) <= set(CATALOGUE), language
    for corpus in ("intents_en.tsv", "intents_heldout_en.tsv", "intents_heldout2_en.tsv", "intents_heldout3_en.tsv",
                   "intents_fr.tsv", "intents_heldout_fr.tsv"):
        language = "fr" if "_fr" in corpus else "en"
        for text, _, _ in load(DATA / corpus):
            intent = parse(text, language)
            if intent is not None and intent.ask is None:
                CATALOGUE[intent.tool].args.model_validate(intent.args)  # raises on a call the worker would refuse
