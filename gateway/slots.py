"""Requests in flight, per gateway and per user: the fairness rule of the HTTP speech and chat routes.

One :class:`Slots` is shared by the routes that do the same kind of work
(``/v1/tts`` and ``/v1/audio/speech`` take the same TTS slots), so a user
cannot get around a limit by calling the other door.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Refused(Exception):
    """No slot is free; ``message`` is a sentence for a person, ``code`` a stable name."""

    def __init__(self, code: str, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.code, self.message, self.retry_after_s = code, message, retry_after_s


class Slots:
    """At most ``max_total`` requests at once, and ``max_per_user`` of them for one user."""

    def __init__(self, what: str, max_total: int, max_per_user: int) -> None:
        self.what, self.max_total, self.max_per_user = what, max_total, max_per_user
        # Per process; asyncio is single-threaded, so plain counters are exact.
        self.in_flight = 0
        self.by_user: dict[str, int] = {}

    def acquire(self, user: str) -> None:
        """Take one slot for ``user`` (give it back with :meth:`release`); :class:`Refused` when none is free."""
        if self.in_flight >= self.max_total:
            raise Refused("too_many_requests",
                          f"{self.max_total} {self.what} are already running; try again in a moment.")
        if self.by_user.get(user, 0) >= self.max_per_user:
            raise Refused("too_many_requests",
                          f"You already have {self.max_per_user} {self.what} running; wait for one to finish.")
        self.in_flight += 1
        self.by_user[user] = self.by_user.get(user, 0) + 1

    def release(self, user: str) -> None:
        self.in_flight -= 1
        self.by_user[user] -= 1
        if not self.by_user[user]:
            del self.by_user[user]

    @contextlib.contextmanager
    def take(self, user: str) -> Iterator[None]:
        """Hold one slot for ``user`` while the block runs."""
        self.acquire(user)
        try:
            yield
        finally:
            self.release(user)
