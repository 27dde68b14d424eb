"""Find which note or memory a spoken query means.

Speech gives approximate words ("the note about the dentist"), so a record
scores by the best of two signals: how many of the query's content words it
contains (fuzzily, so a mis-transcribed word still counts) and how close it is
in meaning (cosine of MiniLM embeddings, when they are available).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
from rapidfuzz import fuzz

#: A record at or above this score matches the query.
MATCH = 0.45
#: The best match is "clearly the one" when the runner-up trails it by this much.
MARGIN = 0.12

_STOP = frozenset(
    "a an and are about any be can did do for from have i in is it me my note notes memory of on or "
    "please say that the this to what which with you your".split()
)
_WORD = re.compile(r"[\w']+")


class HasText(Protocol):
    text: str
    embedding: np.ndarray | None


T = TypeVar("T", bound=HasText)


@dataclass
class Scored(Generic[T]):
    score: float
    item: T


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def keyword_score(query: str, text: str) -> float:
    """Share of the query's content words found in ``text`` (fuzzy per word)."""
    wanted = content_words(query)
    if not wanted:
        return 0.0
    words = set(_WORD.findall(text.lower()))
    hits = 0.0
    for w in wanted:
        if w in words:
            hits += 1
        elif words:
            best = max(fuzz.ratio(w, candidate) for candidate in words)
            hits += 1 if best >= 85 else 0
    return hits / len(wanted)


def rank(query: str, items: Sequence[T], query_vector: np.ndarray | None = None) -> list[Scored[T]]:
    """``items`` that match ``query``, best first."""
    scored: list[Scored[T]] = []
    for item in items:
        score = keyword_score(query, item.text)
        if query_vector is not None and item.embedding is not None:
            score = max(score, float(np.dot(query_vector, item.embedding)))
        if score >= MATCH:
            scored.append(Scored(score, item))
    scored.sort(key=lambda s: s.score, reverse=True)
    return scored


def clear_winner(matches: Sequence[Scored[T]]) -> T | None:
    """The single match the user most likely meant, or None when it is ambiguous."""
    if len(matches) == 1 or (len(matches) > 1 and matches[0].score - matches[1].score >= MARGIN):
        return matches[0].item
    return None
