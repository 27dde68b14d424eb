"""Spoken numbers and durations: "twenty-five", "an hour and a half", "90 seconds".

Transcripts spell numbers either way ("five minutes", "5 minutes"), so the
intent parser turns number words into digits first, then reads durations.
"""

from __future__ import annotations

import re

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
_WORD = r"(?:" + "|".join([*_UNITS, *_TENS, "hundred"]) + r")"
_NUMBER_WORDS = re.compile(rf"\b{_WORD}(?:[\s-]+(?:and\s+)?{_WORD})*\b", re.IGNORECASE)

_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
_UNIT = r"(?P<unit>hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b"
_AMOUNT = r"(?P<n>\d+(?:\.\d+)?)"
_DURATION_PART = re.compile(
    _AMOUNT + r"(?P<half1>\s+and\s+a\s+half)?\s*-?\s*" + _UNIT + r"(?P<half2>\s+and\s+a\s+half)?",
    re.IGNORECASE,
)
_JOINER = re.compile(r"^\s*(?:,|and|,\s*and)?\s*$", re.IGNORECASE)


def _words_value(words: list[str]) -> int:
    value = 0
    for word in words:
        if word == "hundred":
            value = max(value, 1) * 100
        else:
            value += _UNITS.get(word, 0) + _TENS.get(word, 0)
    return value


def words_to_digits(text: str) -> str:
    """Replace spelled-out numbers up to the hundreds with digits ("twenty-five" -> "25")."""
    text = re.sub(r"\ba\s+hundred\b", "one hundred", text, flags=re.IGNORECASE)

    def replace(match: re.Match[str]) -> str:
        words = [w for w in re.split(r"[\s-]+", match.group(0).lower()) if w != "and"]
        return str(_words_value(words))

    return _NUMBER_WORDS.sub(replace, text)


def normalize_amounts(text: str) -> str:
    """Digits for number words, and "half an hour", "an hour" and friends as amounts."""
    text = words_to_digits(text)
    text = re.sub(r"\bhalf\s+(?:an?\s+)(hour|minute)\b", r"0.5 \1", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(?:an?|one)\s+(hour|minute|second)\b", r"1 \1", text, flags=re.IGNORECASE)
    text = re.sub(r"\ba\s+couple\s+(?:of\s+)?", "2 ", text, flags=re.IGNORECASE)
    return text


def parse_duration(text: str) -> tuple[int, tuple[int, int]] | None:
    """Seconds of the first duration in ``text`` and its span, or None.

    Reads "5 minutes", "1 hour and 30 minutes", "2 min 30 s", "1.5 hours",
    "1 and a half minutes", "an hour and a half" (after :func:`normalize_amounts`).
    """
    parts = list(_DURATION_PART.finditer(text))
    if not parts:
        return None
    seconds = 0.0
    start, end = parts[0].start(), parts[0].end()
    for i, part in enumerate(parts):
        if i and not _JOINER.match(text[end : part.start()]):
            break
        amount = float(part.group("n"))
        if part.group("half1") or part.group("half2"):
            amount += 0.5
        seconds += amount * _UNIT_SECONDS[part.group("unit")[0].lower()]
        end = part.end()
    if seconds <= 0:
        return None
    return round(seconds), (start, end)


def spoken_duration(seconds: int) -> str:
    """ "5 minutes", "1 hour and 30 minutes": for sentences said back to the user."""
    parts = []
    for name, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " and ".join(parts) if parts else "0 seconds"
