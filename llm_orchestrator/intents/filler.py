"""Words around a command that are not part of it: the wake phrase, fillers, politeness.

"Hey Jarvis, um, could you please set a timer for five minutes, thanks" is
"set a timer for five minutes" once these are gone. The word lists live in
each language's template file (``filler:``).
"""

from __future__ import annotations

import re
from typing import Any


def _alternatives(words: list[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))


class Filler:
    """Strips a language's wake phrases, leading fillers and trailing politeness."""

    def __init__(self, spec: dict[str, Any]) -> None:
        greet = _alternatives(spec.get("wake_greetings", []))
        names = _alternatives(spec.get("wake_words", []))
        self._wake = re.compile(rf"^\s*(?:(?:{greet})[\s,]+)?(?:{names})\b[\s,.!?:;-]*", re.IGNORECASE)
        self._lead = re.compile(rf"^\s*(?:{_alternatives(spec.get('lead', []))})\b[\s,.!?:;-]*", re.IGNORECASE)
        self._trail = re.compile(rf"[\s,]+(?:{_alternatives(spec.get('trail', []))})[\s.!?,]*$", re.IGNORECASE)
        self._hesitation = re.compile(r"\b(?:um+|uh+|erm+|er|hmm+|euh|ben|bah)\b[,.]?\s*", re.IGNORECASE)
        self.empty_args = frozenset(w.lower() for w in spec.get("empty_args", []))
        self.fact_starts = frozenset(w.lower() for w in spec.get("fact_starts", []))

    def wake_only(self, text: str) -> str:
        """``text`` without the wake phrase and hesitations, nothing else."""
        text = re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip()
        text = self._hesitation.sub("", text)
        return self._wake.sub("", text, count=1).strip()

    def strip(self, text: str) -> str:
        """``text`` without wake phrase, hesitations, leading fillers and trailing politeness."""
        text = self.wake_only(text)
        for _ in range(8):  # "so, um, okay, could you please ..." peels off one word at a time
            shorter = self._lead.sub("", text, count=1)
            shorter = self._wake.sub("", shorter, count=1)
            if shorter == text:
                break
            text = shorter
        for _ in range(3):
            shorter = self._trail.sub("", text)
            if shorter == text:
                break
            text = shorter
        return text.strip(" ,;:-")
