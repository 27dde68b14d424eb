"""Cut text into pieces that are each synthesized in one go.

Piper renders a whole sentence before yielding any of it, so a long sentence
delays its first audio, and a very long one costs memory. Pieces stay under a
hard character limit, cut at sentence ends first, then at clause boundaries
(commas, semicolons, dashes), and only as a last resort between words. The
turn's first piece may be cut shorter, at a clause boundary only, so the
first audio leaves sooner without breaking a phrase in the middle.
"""

from __future__ import annotations

import re
from collections import deque

# A full stop after a title or an initial ("Dr. Okafor", "J. K. Rowling") does not end a sentence:
# a cut there makes the voice pause and drop its pitch in the middle of a name.
_TITLES = ("Dr", "Mr", "Mrs", "Ms", "Mx", "Prof", "St", "Mt", "Jr", "Sr", "Capt", "Gen", "Lt", "Col", "Sgt", "Rev")
_NOT_AN_END = "".join(f"(?<!\\b{t}\\.)" for t in _TITLES) + r"(?<!\b[A-Z]\.)"
_SENTENCE_BREAK = re.compile(rf"(?<=[.!?;:]){_NOT_AN_END}[\"')\]]*\s+|\n+")
_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+|\s+(?=[-(])")


def _clauses(text: str) -> list[str]:
    return [c for c in (c.strip() for c in _CLAUSE_BREAK.split(text)) if c]


def _words(text: str, limit: int) -> list[str]:
    """Greedy packing of words into parts of at most ``limit`` characters."""
    parts: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > limit:  # a "word" longer than the limit: no better place to cut
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:limit])
            word = word[limit:]
        candidate = f"{current} {word}".strip()
        if len(candidate) <= limit:
            current = candidate
        else:
            parts.append(current)
            current = word
    if current:
        parts.append(current)
    return parts


def split_for_speech(text: str, max_chars: int, first_max_chars: int = 0) -> list[str]:
    """Pieces of ``text`` of at most ``max_chars`` each, neighbours merged while they fit.

    ``first_max_chars`` (0: off) is a soft limit for the first piece: it is
    honoured when the first sentence has a clause boundary to cut at.
    """
    units = deque(u for u in (u.strip() for u in _SENTENCE_BREAK.split(text)) if u)
    pieces: list[str] = []
    current = ""
    while units:
        unit = units.popleft()
        first = not pieces
        soft = min(first_max_chars, max_chars) if first and first_max_chars > 0 else max_chars
        candidate = f"{current} {unit}".strip()
        if len(candidate) <= soft:
            current = candidate
            continue
        if current:
            pieces.append(current)
            current = ""
            units.appendleft(unit)
            continue
        clauses = _clauses(unit)
        if len(clauses) > 1:
            units.extendleft(reversed(clauses))
            continue
        if len(unit) <= max_chars:
            # Over the soft first-piece limit with nowhere natural to cut: keep it whole.
            pieces.append(unit)
            continue
        units.extendleft(reversed(_words(unit, max_chars)))
    if current:
        pieces.append(current)
    return pieces
