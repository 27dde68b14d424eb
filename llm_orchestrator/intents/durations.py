"""Durations said in words or digits, per language: "an hour and a half", "90 seconds", "une demi-heure".

English reuses the orchestrator's number reading (:mod:`llm_orchestrator.numbers`);
French is first rewritten into the same digits-and-units form.
"""

from __future__ import annotations

import re

from ..numbers import normalize_amounts, parse_duration

# Words that may stand around a duration without changing it ("about 5 minutes").
_AROUND = re.compile(r"\b(?:about|around|roughly|approximately|exactly|just|only|another|like|some|the|a|an|of|"
                     r"environ|à peu près|exactement|juste|seulement|encore|un|une|de|d)\b", re.IGNORECASE)

_FR_UNITS = {
    "zéro": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7, "huit": 8,
    "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15, "seize": 16,
    "vingt": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60, "cent": 100,
}  # fmt: skip
_FR_WORD = r"(?:" + "|".join(sorted(_FR_UNITS, key=len, reverse=True)) + r")"
_FR_NUMBER = re.compile(rf"\b{_FR_WORD}(?:(?:[\s-]+et[\s-]+|[\s-]+){_FR_WORD})*\b", re.IGNORECASE)


def _fr_value(words: list[str]) -> int:
    current = 0
    for word in words:
        value = _FR_UNITS[word]
        if value == 100:
            current = max(current, 1) * 100
        elif word == "vingt" and current == 4:  # quatre-vingt(s)
            current *= 20
        else:
            current += value
    return current


def _fr_digits(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        words = [w for w in re.split(r"[\s-]+", match.group(0).lower()) if w not in ("et", "")]
        words = [w.rstrip("s") if w.rstrip("s") in _FR_UNITS and w not in _FR_UNITS else w for w in words]
        return str(_fr_value(words))

    return _FR_NUMBER.sub(replace, text)


def _french_to_english(text: str) -> str:
    t = text.lower().replace("\u2019", "'")
    t = re.sub(r"\b(?:une\s+)?demi[\s-]heure\b", "0.5 hour", t)
    t = re.sub(r"\btrois\s+quarts?\s+d'heure\b", "45 minutes", t)
    t = re.sub(r"\b(?:un\s+)?quart\s+d'heure\b", "15 minutes", t)
    t = re.sub(r"\b(heures?|minutes?|secondes?)\s+et\s+demie?\b", r"\1 and a half", t)
    t = re.sub(r"\bune\s+minute\b", "1 minute", t)
    t = re.sub(r"\bune\s+heure\b", "1 hour", t)
    t = re.sub(r"\bune\s+seconde\b", "1 second", t)
    t = _fr_digits(t)
    t = re.sub(r"\bheures?\s+et\s+quart\b", "hours 15 minutes", t)
    t = re.sub(r"\bheures?\b", "hours", t)
    t = re.sub(r"\bsecondes?\b", "seconds", t)
    t = re.sub(r"\bet\b", "and", t)
    return t


def _english(text: str) -> str:
    t = re.sub(r"\bthree\s+quarters\s+of\s+an\s+hour\b", "45 minutes", text, flags=re.IGNORECASE)
    t = re.sub(r"\b(?:a\s+)?quarter\s+(?:of\s+)?an\s+hour\b", "15 minutes", t, flags=re.IGNORECASE)
    return normalize_amounts(t)


def normalized(text: str, language: str) -> str:
    """``text`` in the digits-and-English-units form :func:`parse_duration` reads."""
    return _french_to_english(text) if language == "fr" else _english(text)


def seconds_in(text: str, language: str, whole: bool = True) -> int | None:
    """Seconds of the duration ``text`` says; with ``whole``, only if that is all it says."""
    norm = normalized(text, language)
    found = parse_duration(norm)
    if found is None:
        return None
    seconds, (start, end) = found
    if whole:
        rest = _AROUND.sub(" ", norm[:start] + " " + norm[end:])
        if re.sub(r"[\s,.!?'-]+", "", rest):
            return None
    return seconds if seconds > 0 else None


def find_duration(text: str, language: str) -> tuple[int, str] | None:
    """The first duration anywhere in ``text``: its seconds and the text after it (for a reminder's label)."""
    norm = normalized(text, language)
    found = parse_duration(norm)
    if found is None:
        return None
    seconds, (_, end) = found
    return seconds, norm[end:]
