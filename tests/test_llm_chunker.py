"""The speech chunker and the markdown/emoji stripping, on tricky text, streamed in small pieces."""

from __future__ import annotations

import pytest

from llm_orchestrator.chunker import SpeechChunker
from llm_orchestrator.speakable import speakable


def chunks(text: str, step: int = 3, **options: object) -> list[str]:
    """Stream ``text`` a few characters at a time, as tokens arrive."""
    chunker = SpeechChunker(**options)  # type: ignore[arg-type]
    out: list[str] = []
    for i in range(0, len(text), step):
        out += chunker.feed(text[i : i + step])
    return out + chunker.flush()


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_sentences_do_not_break_at_abbreviations_numbers_or_times(step: int) -> None:
    text = (
        "Sure. Dr. Smith met Mr. Jones at 10:30 a.m. on Monday. Pi is about 3.14, e.g. in circles. "
        "The U.S. Army has 1,000 trucks! Is that so? Apples, pears, etc. are fruit."
    )
    assert chunks(text, step) == [
        "Sure.",
        "Dr. Smith met Mr. Jones at 10:30 a.m. on Monday.",
        "Pi is about 3.14, e.g. in circles.",
        "The U.S. Army has 1,000 trucks!",
        "Is that so?",
        "Apples, pears, etc. are fruit.",
    ]


def test_the_first_chunk_is_cut_early_at_a_clause() -> None:
    text = "The capital of France is Paris, a city on the Seine, famous for art. It is lovely."
    assert chunks(text) == ["The capital of France is Paris,", "a city on the Seine, famous for art.", "It is lovely."]
    # ...but not after too few words.
    assert chunks("Well, I think so. Yes.") == ["Well, I think so.", "Yes."]
    # ...and never for text known in advance.
    assert chunks("Done, your timer is set.", early_first=False) == ["Done, your timer is set."]


def test_a_sentence_end_waits_for_the_next_character() -> None:
    chunker = SpeechChunker()
    assert chunker.feed("It costs 3.") == []  # 3.5 or the end of a sentence?
    assert chunker.feed("5 dollars. Then") == ["It costs 3.5 dollars."]
    assert chunker.flush() == ["Then"]


def test_list_items_and_headings() -> None:
    text = "## Steps\n1. Boil water.\n2. Add the pasta.\n- Stir it\n- Serve\n\n3. Eat."
    assert chunks(text) == ["Steps", "1. Boil water.", "2. Add the pasta.", "Stir it", "Serve", "3. Eat."]
    assert chunks("I counted to 3. Then I stopped.") == ["I counted to 3.", "Then I stopped."]


def test_code_blocks_are_not_spoken() -> None:
    text = "Use this:\n```python\nprint('hi. there')\nx = 1\n```\nThen run it. Also ```a``` and `inline` code."
    assert chunks(text, step=2) == [
        "Use this:",
        "I've put the code on your screen.",
        "Then run it.",
        "Also",  # what led up to a code block is said before it
        "and inline code.",
    ]
    assert chunks("Here:\n```\nunterminated code. More.") == ["Here:", "I've put the code on your screen."]


def test_markdown_and_emoji_are_stripped_from_speech() -> None:
    text = "**Great** question 😀! See [the docs](https://x.org/a) or https://www.example.com/page. 👍🏽"
    assert chunks(text) == ["Great question!", "See the docs or example.com."]
    assert chunks("🎉🎉") == []  # nothing to say


def test_quotes_after_the_full_stop() -> None:
    assert chunks('He said "stop." Then he left.') == ['He said "stop."', "Then he left."]


def test_a_very_long_sentence_is_cut_at_a_clause() -> None:
    words = " ".join(["word"] * 30)
    out = chunks(f"{words}, {words}, {words}, {words}.", max_chars=200, early_first=False)
    assert len(out) > 1 and all(len(c) <= 200 for c in out)
    assert " ".join(out).replace(" ", "") == f"{words}, {words}, {words}, {words}.".replace(" ", "")


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("# Title", "Title"),
        ("> a quote", "a quote"),
        ("*emphasis* and __strong__ and ~~gone~~", "emphasis and strong and gone"),
        ("snake_case_name stays", "snake_case_name stays"),
        ("| a | b |", "a, b"),
        ("![a cat](cat.png)", "a cat"),
        ("Temperature is 21°C, café © 2024", "Temperature is 21°C, café © 2024"),
        ("---", ""),
    ],
)
def test_speakable(raw: str, spoken: str) -> None:
    assert speakable(raw) == spoken
