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


@pytest.mark.parametrize("step", [1, 3, 1000])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Replies of the packaged model whose first clause was long: cut before the conjunction or relative word.
        (
            "Mondays are a day of the week that brings together family and friends. Enjoy it.",
            ["Mondays are a day of the week", "that brings together family and friends.", "Enjoy it."],
        ),
        (
            "The best way to sleep is to try and go to bed 7-9 hours before you wake up.",
            ["The best way to sleep", "is to try and go to bed 7-9 hours before you wake up."],
        ),
        # A copula after a subject of five words or more; not after "there", nor in a question.
        (
            "The key to improving your sleep is to adopt a healthy routine.",
            ["The key to improving your sleep", "is to adopt a healthy routine."],
        ),
        (
            "A spreadsheet is a digital document used to manage and organize data in rows and columns.",
            ["A spreadsheet is a digital document used to manage", "and organize data in rows and columns."],
        ),
        ("I think it is fine if you do it.", ["I think it is fine", "if you do it."]),
        (
            "I can promise you that my favourite dish tonight is a classic chicken.",
            ["I can promise you", "that my favourite dish tonight is a classic chicken."],
        ),
        (
            "The best way to make a cup of tea is to boil water in a kettle first.",
            ["The best way to make a cup of tea", "is to boil water in a kettle first."],
        ),
        (
            "The simplest yet most effective way to improve your sleep is by making it a habit.",
            ["The simplest yet most effective way to improve your sleep", "is by making it a habit."],
        ),
        # A preposition only after first_max_words (8) words.
        (
            "The moon's beauty is a beautiful reminder of the intricate balance between light and darkness.",
            ["The moon's beauty is a beautiful reminder of the intricate balance", "between light and darkness."],
        ),
        # A clause boundary that comes first still wins.
        (
            "The capital of France is Paris, which is on the Seine.",
            ["The capital of France is Paris,", "which is on the Seine."],
        ),
    ],
)
def test_a_long_first_clause_is_cut_at_a_phrase_boundary(step: int, text: str, expected: list[str]) -> None:
    assert chunks(text, step) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The temperature is usually between 10 and 20 degrees in spring.",  # between A and B
        "There were more than 100 people at the party.",  # more than
        "We have two or three more days to go.",  # a number
        "I would recommend looking for a good book about cats.",  # look for; "and" too early
        "I like to eat cats and dogs.",  # the rest would be two words: "and dogs."
        "Yes and no.",  # too few words
        "You can ask me about that tomorrow morning.",  # "that" after a preposition is not a relative
        "My favourite show is Tom and Jerry.",  # a name
        'He said "we can go and see it" yesterday.',  # inside a quotation
        "It is either red or blue in the morning.",  # either A or B
        "The moon is a beautiful and mysterious celestial body.",  # in a noun phrase
        "Paris is the capital and largest city of France.",  # in a noun phrase
        "The first thing you should do is to sleep on your side.",  # a verb and its complement
        "That's a lot to take in one answer.",  # "take in": fewer than first_max_words words anyway
        "Do you know what the weather is like today?",  # a question
        "I wonder what the weather is like today.",  # "what ... is"
        "Every single day of the week there is news.",  # "there is"
    ],
)
def test_a_first_chunk_is_not_cut_where_the_words_bind(text: str) -> None:
    assert chunks(text, 1) == [text]


def test_phrase_boundaries_only_for_the_first_chunk_and_only_when_wanted() -> None:
    text = "Sure. Mondays are a day of the week that brings together family and friends."
    assert chunks(text) == ["Sure.", "Mondays are a day of the week that brings together family and friends."]
    one = "Mondays are a day of the week that brings together family and friends."
    assert chunks(one, first_max_words=0) == [one]  # clause boundaries only
    assert chunks(one, early_first=False) == [one]


def test_a_phrase_boundary_waits_for_the_word_after_the_conjunction() -> None:
    chunker = SpeechChunker()
    assert chunker.feed("Mondays are a day of the week that ") == []  # "that." could still end it
    assert chunker.feed("brings") == []  # "brings." would leave a dangling chunk
    assert chunker.feed(" ") == ["Mondays are a day of the week"]
    assert chunker.feed("people together.") == []
    assert chunker.flush() == ["that brings people together."]
