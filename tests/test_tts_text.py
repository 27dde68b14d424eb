"""Pure logic of the TTS worker: number words, the normalizer, splitting, audio pieces, voices."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tts_worker import numbers
from tts_worker.cancels import CancelBook
from tts_worker.engine import SpeechEngine
from tts_worker.normalize import normalize
from tts_worker.segments import split_for_speech
from tts_worker.stream import PieceCutter
from tts_worker.voices import VoiceCatalog, VoiceInfo, discover, resolve_model
from voicefleet.models import piper_voice


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (42, "forty-two"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (999, "nine hundred ninety-nine"),
        (1000, "one thousand"),
        (1001, "one thousand one"),
        (21_500, "twenty-one thousand five hundred"),
        (1_000_000, "one million"),
        (2_000_000_017, "two billion seventeen"),
        (-8, "minus eight"),
    ],
)
def test_cardinals(n: int, words: str) -> None:
    assert numbers.cardinal(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (8, "eighth"), (9, "ninth"), (12, "twelfth"),
     (20, "twentieth"), (21, "twenty-first"), (23, "twenty-third"), (100, "one hundredth"), (101, "one hundred first")],
)  # fmt: skip
def test_ordinals(n: int, words: str) -> None:
    assert numbers.ordinal(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1999, "nineteen ninety-nine"), (2026, "twenty twenty-six"), (2005, "two thousand five"),
     (1900, "nineteen hundred"), (1905, "nineteen oh five")],
)  # fmt: skip
def test_years(n: int, words: str) -> None:
    assert numbers.year(n) == words


def test_huge_numbers_are_read_digit_by_digit() -> None:
    assert numbers.cardinal(10**16) == "one " + " ".join(["zero"] * 16)


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        # numbers
        ("I have 42 apples.", "I have forty-two apples."),
        ("Pi is about 3.5 here.", "Pi is about three point five here."),
        ("There were 1,000 people.", "There were one thousand people."),
        ("She came 1st, he came 22nd.", "She came first, he came twenty-second."),
        ("It dropped to -5 overnight.", "It dropped to minus five overnight."),
        ("Pages 10-20.", "Pages ten to twenty."),
        ("Code 007.", "Code zero zero seven."),
        ("Version 1.2.3 is out.", "Version one point two point three is out."),
        ("It happened in 1999.", "It happened in nineteen ninety-nine."),
        ("Add 1/2 cup and 3/4 cup.", "Add one half cup and three quarters cup."),
        # dates and times
        ("The launch is on 2026-11-23.", "The launch is on November twenty-third, twenty twenty-six."),
        ("Due 11/23.", "Due November twenty-third."),
        ("Born March 3rd, 1990.", "Born March third, nineteen ninety."),
        ("On the 5th of May.", "On the fifth of May."),
        ("Meet at 10:30.", "Meet at ten thirty."),
        ("Dinner at 7pm.", "Dinner at seven P M."),
        ("Wake me at 6:05 a.m. tomorrow.", "Wake me at six oh five A M tomorrow."),
        ("It is 10:00 now.", "It is ten o'clock now."),
        # money and percentages
        ("It costs $5.99.", "It costs five dollars and ninety-nine cents."),
        ("Only $1 and 99 cents.", "Only one dollar and ninety-nine cents."),
        ("That is $0.50.", "That is fifty cents."),
        ("Tickets are €10.", "Tickets are ten euros."),
        ("A £3.50 coffee.", "A three pounds and fifty pence coffee."),
        ("They raised $1.5 million.", "They raised one point five million dollars."),
        ("Save 50% today.", "Save fifty percent today."),
        ("Rates rose 3.5%.", "Rates rose three point five percent."),
        # symbols and units
        ("Tom & Jerry", "Tom and Jerry"),
        ("2+2=4", "two plus two equals four"),
        ("It is 21°C outside.", "It is twenty-one degrees Celsius outside."),
        ("A low of -3°F.", "A low of minus three degrees Fahrenheit."),
        ("It's 5 km away, at 50 km/h.", "It's five kilometers away, at fifty kilometers per hour."),
        ("Ask @sam about it.", "Ask at sam about it."),
        ("Call 555-123-4567.", "Call five five five, one two three, four five six seven."),
        # URLs and emails: the domain is read, never the scheme
        ("See https://www.example.com/docs?page=2 for more.", "See example dot com for more."),
        ("Go to github.com/org/repo.", "Go to github dot com."),
        ("Mail john.doe@example.org today.", "Mail john dot doe at example dot org today."),
        # markdown
        ("This is **really** *important*.", "This is really important."),
        ("Read [the guide](https://x.org/guide) first.", "Read the guide first."),
        ("Run `pip install voicefleet` now.", "Run pip install voicefleet now."),
        ("# Weather\n- Sunny\n- Warm", "Weather. Sunny. Warm."),
        ("1. Preheat the oven\n2. Bake", "Preheat the oven. Bake."),
        ("```python\nprint('hi')\n```", "print('hi')"),
        ("snake_case stays readable", "snake case stays readable"),
        # other
        ("Fruit, e.g. apples.", "Fruit, for example apples."),
        ("Nice! 😀👍", "Nice!"),
        ("Open 9am-5pm, Mon-Fri.", "Open nine A M to five P M, Monday to Friday."),
        ("The screen is 16:9.", "The screen is sixteen to nine."),
        ("Hits of the 1990s and the '80s.", "Hits of the nineteen nineties and the eighties."),
        ("A 3x speedup in C#.", "A three times speedup in C sharp."),
        ("yes/no over HTTP/2", "yes or no over HTTP slash two"),
        ("He said \u2014 well \u2014 no.", "He said, well, no."),
    ],
)
def test_normalize(text: str, spoken: str) -> None:
    assert normalize(text) == spoken


def test_normalize_leaves_no_digits_or_markup() -> None:
    text = "**Total:** $1,234.56 (12% off) on 2026-01-02 at 9:15pm, see https://shop.example.com #3"
    spoken = normalize(text)
    assert not any(ch.isdigit() for ch in spoken)
    assert not set("*#$%/") & set(spoken)
    assert "one thousand two hundred thirty-four dollars and fifty-six cents" in spoken


def test_normalize_of_nothing_speakable_is_empty() -> None:
    assert normalize("") == ""
    assert normalize("  **  \n---\n ") == ""


# ---------------------------------------------------------------------------
# splitting text into synthesis pieces
# ---------------------------------------------------------------------------


def test_short_sentences_are_merged_up_to_the_limit() -> None:
    text = "Hi. How are you? I am fine. Thanks for asking."
    assert split_for_speech(text, 200) == [text]
    pieces = split_for_speech(text, 20)
    assert pieces == ["Hi. How are you?", "I am fine.", "Thanks for asking."]


def test_long_sentence_is_cut_at_clauses_then_words() -> None:
    sentence = "First part of a long sentence, second part that goes on, and a third part to end it."
    pieces = split_for_speech(sentence, 40)
    assert pieces == ["First part of a long sentence,", "second part that goes on,", "and a third part to end it."]
    wordy = " ".join(["word"] * 50)
    pieces = split_for_speech(wordy, 42)
    assert all(len(p) <= 42 for p in pieces) and " ".join(pieces) == wordy
    assert split_for_speech("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_first_piece_is_cut_short_only_at_a_clause() -> None:
    text = "The weather in Paris today is sunny, with a high of twenty two degrees and a light breeze."
    pieces = split_for_speech(text, 200, first_max_chars=60)
    assert pieces == ["The weather in Paris today is sunny,", "with a high of twenty two degrees and a light breeze."]
    no_clause = "The weather in Paris today is sunny with a high of twenty two degrees and a light breeze."
    assert split_for_speech(no_clause, 200, first_max_chars=60) == [no_clause]


def test_a_title_or_an_initial_does_not_end_a_sentence() -> None:
    text = "Your appointment with Dr. Okafor is at ten. J. K. Rowling wrote it. Mrs. Smith agreed."
    assert split_for_speech(text, 45) == [
        "Your appointment with Dr. Okafor is at ten.", "J. K. Rowling wrote it. Mrs. Smith agreed.",
    ]  # fmt: skip
    first = split_for_speech("Dr. Okafor will see you tomorrow, at ten in the morning.", 200, first_max_chars=40)
    assert first == ["Dr. Okafor will see you tomorrow,", "at ten in the morning."]


def test_every_word_survives_splitting() -> None:
    text = normalize("Well, $5.99 is fine; but 1,000 items? That's 3.5% of 2026-11-23's budget! " * 8)
    for limit in (30, 80, 200):
        pieces = split_for_speech(text, limit, first_max_chars=25)
        assert all(len(p) <= limit for p in pieces)
        assert " ".join(pieces).split() == text.split()


# ---------------------------------------------------------------------------
# audio pieces
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("in_rate", "out_rate"), [(22050, 22050), (22050, 16000), (22050, 24000)])
def test_piece_cutter_keeps_every_sample_and_marks_the_end(in_rate: int, out_rate: int) -> None:
    cutter = PieceCutter(in_rate, out_rate, piece_samples=out_rate // 10)
    tone = (np.sin(np.arange(in_rate) / 5) * 8000).astype(np.int16)  # one second
    pieces = cutter.push(tone[:7000]) + cutter.push(tone[7000:])
    final = cutter.finish()
    assert final and all(len(p) == 2 * cutter.piece_samples for p in pieces + final[:-1])
    assert 0 < len(final[-1]) <= 2 * cutter.piece_samples
    total = sum(len(p) for p in pieces + final) // 2
    assert abs(total - out_rate) <= 2


def test_piece_cutter_with_no_audio_gives_one_empty_final_piece() -> None:
    assert PieceCutter(22050, 16000, 1600).finish() == [b""]


def test_cancel_book_turns_and_sessions() -> None:
    book = CancelBook(ttl_s=10)
    book.add("s1", "t1", at=100.0)
    assert book.is_cancelled("s1", "t1", started_at=50.0)
    assert not book.is_cancelled("s1", "t2", started_at=50.0)
    book.add("s2", "", at=200.0)  # the whole session: work started before it stops
    assert book.is_cancelled("s2", "any", started_at=150.0)
    assert not book.is_cancelled("s2", "later", started_at=250.0)
    assert not book.is_cancelled("s1", "t1", started_at=50.0)  # forgotten after the TTL


# ---------------------------------------------------------------------------
# the voice catalog (no model loaded)
# ---------------------------------------------------------------------------


def test_voices_are_discovered_beside_the_default_and_broken_ones_skipped(tmp_path: Path) -> None:
    packaged = piper_voice()
    for name in ("en_GB-test-low", "en_US-joe-medium"):  # a new voice, and a duplicate of the default
        (tmp_path / f"{name}.onnx").symlink_to(packaged)
        shutil.copy(f"{packaged}.json", tmp_path / f"{name}.onnx.json")
    (tmp_path / "orphan.onnx").symlink_to(packaged)  # no config: skipped
    (tmp_path / "garbled.onnx").symlink_to(packaged)
    (tmp_path / "garbled.onnx.json").write_text("{not json")
    infos = discover(packaged, tmp_path)
    assert [i.name for i in infos] == ["en_US-joe-medium", "en_GB-test-low"]
    assert infos[0].public() == {
        "name": "en_US-joe-medium",
        "language": "en_US",
        "sample_rate": 22050,
        "quality": "medium",
        "engine": "piper",
    }
    assert discover(packaged, tmp_path / "missing") == infos[:1]


def test_default_voice_setting_accepts_a_name_or_a_path(tmp_path: Path) -> None:
    packaged = piper_voice()
    (tmp_path / "mine.onnx").touch()
    assert resolve_model("", tmp_path, packaged) == packaged
    assert resolve_model("mine", tmp_path, packaged) == tmp_path / "mine.onnx"
    assert resolve_model(str(packaged), None, packaged) == packaged
    assert resolve_model("en_US-joe-medium", None, packaged) == packaged
    with pytest.raises(FileNotFoundError):
        resolve_model("nobody", tmp_path, packaged)


class _Silent(SpeechEngine):
    sample_rate = 22050

    def __init__(self, name: str) -> None:
        self.name = name

    def synthesize(self, text: str, speech_rate: float = 1.0) -> Iterator[np.ndarray]:
        yield np.zeros(10, dtype=np.int16)


def test_catalog_resolves_what_people_type() -> None:
    infos = [
        VoiceInfo(name, Path(f"{name}.onnx"), "en_US", 22050, "medium")
        for name in ("en_US-joe-medium", "en_US-amy-low", "en_GB-amy-high")
    ]
    catalog = VoiceCatalog({i.name: _Silent(i.name) for i in infos}, infos, default="en_US-joe-medium")

    def name(choice: str | None) -> str | None:
        engine = catalog.resolve(choice)
        return engine.name if engine else None

    assert name(None) == name("") == name("default") == "en_US-joe-medium"
    assert name("en_US-amy-low") == "en_US-amy-low"
    assert name("EN_gb-AMY-high") == "en_GB-amy-high"
    assert name("joe") == "en_US-joe-medium"
    assert name("amy") is None  # two voices match: ambiguous
    assert name("nobody") is None
    assert catalog.status()["voices"] == ["en_US-joe-medium", "en_US-amy-low", "en_GB-amy-high"]


def test_the_default_voice_gives_way_to_one_of_the_sessions_language() -> None:
    infos = [
        VoiceInfo(name, Path(f"{name}.onnx"), name[:5], 22050, "medium")
        for name in ("en_US-joe-medium", "fr_FR-siwis-medium", "de_DE-thorsten-low", "fr_FR-tom-medium")
    ]
    catalog = VoiceCatalog({i.name: _Silent(i.name) for i in infos}, infos, default="en_US-joe-medium")

    def name(choice: str | None, language: str) -> str | None:
        engine = catalog.resolve(choice, language)
        return engine.name if engine else None

    assert catalog.languages == {"en", "fr", "de"}
    assert name(None, "fr") == name("default", "fr-CA") == "fr_FR-siwis-medium"  # the first French voice
    assert name(None, "DE") == "de_DE-thorsten-low"
    assert name(None, "en-GB") == name(None, "") == name(None, "auto") == "en_US-joe-medium"
    assert name(None, "es") == "en_US-joe-medium"  # no Spanish voice: the default
    assert name("tom", "de") == "fr_FR-tom-medium"  # a voice asked by name is that voice
