"""What the intent layer produces: a tool to call with its arguments, or a question to ask back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Intent:
    """A command for one tool; ``ask`` is set when something is missing (say it instead).

    ``stage`` tells how it was found: ``template`` (a sentence template matched the
    whole utterance) or ``nearest`` (the closest template by meaning, above the
    measured threshold); ``score`` is that closeness.
    """

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    ask: str | None = None
    stage: str = "template"
    score: float = 1.0
