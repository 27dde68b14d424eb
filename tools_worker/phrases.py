"""Small helpers that turn values into words meant to be spoken."""

from __future__ import annotations

from collections.abc import Sequence

_UNITS = (("hour", 3600), ("minute", 60), ("second", 1))


def _parts(seconds: float) -> list[tuple[int, str]]:
    remaining = max(0, round(seconds))
    parts: list[tuple[int, str]] = []
    for unit, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append((count, unit))
    return parts or [(0, "second")]


def duration(seconds: float) -> str:
    """``300`` -> "5 minutes"; ``5400`` -> "1 hour and 30 minutes"."""
    words = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in _parts(seconds)]
    return join(words)


def duration_adjective(seconds: float) -> str:
    """``300`` -> "5 minute", as in "your 5 minute timer"."""
    return " ".join(f"{n} {unit}" for n, unit in _parts(seconds))


def join(items: Sequence[str], last: str = "and") -> str:
    """``["a", "b", "c"]`` -> "a, b and c"."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "note")`` -> "1 note"; ``count(3, "note")`` -> "3 notes"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def clip(text: str, limit: int = 80) -> str:
    """One line of at most ``limit`` characters, cut at a word boundary."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"
