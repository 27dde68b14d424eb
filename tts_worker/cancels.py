"""Cancels this process heard on the broadcast, remembered for a while.

A barge-in must stop a turn's audio between two pieces, so the check has to
be a dictionary lookup, not a Redis round trip. The Redis marker
(``Bus.is_cancelled``) is still checked before each synthesis step, for
cancels sent while the subscription was down.
"""

from __future__ import annotations

import time


class CancelBook:
    """Cancelled turns (and whole sessions) by the monotonic time they were heard."""

    def __init__(self, ttl_s: float = 600.0) -> None:
        self.ttl_s = ttl_s
        self._turns: dict[tuple[str, str], float] = {}
        self._sessions: dict[str, float] = {}

    def add(self, session_id: str, turn_id: str, at: float | None = None) -> None:
        """Record a cancel; an empty ``turn_id`` cancels all work of the session started so far."""
        at = time.monotonic() if at is None else at
        if turn_id:
            self._turns[(session_id, turn_id)] = at
        else:
            self._sessions[session_id] = at
        self._forget_before(at - self.ttl_s)

    def is_cancelled(self, session_id: str, turn_id: str, started_at: float) -> bool:
        """Whether work of this turn, started at ``started_at`` (monotonic), must stop."""
        if (session_id, turn_id) in self._turns:
            return True
        return self._sessions.get(session_id, float("-inf")) >= started_at

    def _forget_before(self, horizon: float) -> None:
        self._turns = {k: t for k, t in self._turns.items() if t >= horizon}
        self._sessions = {k: t for k, t in self._sessions.items() if t >= horizon}
