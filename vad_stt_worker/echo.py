"""Tell the user's voice from the assistant's own voice coming back through the microphone.

Without acoustic echo cancellation the microphone hears the reply. While the
client plays audio (and for a short tail after), speech must pass a stricter
test to count: a higher Silero probability, a longer run, and a level clearly
above the echo's. The echo's level is learned from the microphone itself
during playback: a high percentile of the chunk levels of the last few
seconds, leaving out chunks that already count as the user's speech. A
person talking over the reply is louder than the reply's echo at the
microphone (they are closer to it than the speaker is); the echo is not
louder than itself.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .audio import FLOOR_DB


class EchoGuard:
    """Learns the echo level during playback and judges chunks against it."""

    def __init__(
        self,
        vad_threshold: float = 0.85,
        margin_db: float = 6.0,
        warmup_chunks: int = 16,
        window_chunks: int = 125,  # 4 s of 32 ms chunks
        percentile: float = 95.0,
    ) -> None:
        self.vad_threshold = vad_threshold
        self.margin_db = margin_db
        self.warmup_chunks = warmup_chunks
        self.percentile = percentile
        self._levels: deque[float] = deque(maxlen=window_chunks)
        #: How much the echo canceller took out of recent playback chunks that held sound (dB, before - after).
        self._erle: deque[float] = deque(maxlen=window_chunks)
        self._heard = 0  # playback chunks heard in this session (the echo path stays the same)

    @property
    def ready(self) -> bool:
        """Enough playback heard to know how loud the echo is."""
        return self._heard >= self.warmup_chunks

    @property
    def echo_db(self) -> float:
        if not self._levels:
            return FLOOR_DB
        return float(np.percentile(np.fromiter(self._levels, dtype=np.float32), self.percentile))

    def is_user(
        self, probability: float, level: float, vad_threshold: float | None = None, margin_db: float | None = None
    ) -> bool:
        """Does this chunk sound like the user speaking over the reply? (Thresholds: the guard's own, or given.)"""
        vad = self.vad_threshold if vad_threshold is None else vad_threshold
        margin = self.margin_db if margin_db is None else margin_db
        return self.ready and probability >= vad and level >= self.echo_db + margin

    def observe(self, level: float) -> None:
        """Learn from a playback chunk that did not count as the user's speech."""
        self._levels.append(level)
        self._heard += 1

    def observe_erle(self, raw_level: float, level: float, floor_db: float = -55.0) -> None:
        """Learn how much the canceller removes: a playback chunk's level before and after it."""
        if raw_level >= floor_db:  # near silence says nothing about the canceller
            self._erle.append(raw_level - level)

    def forget_erle(self) -> None:
        """The canceller was restarted: what it removed before says nothing of the new one."""
        self._erle.clear()

    def converged(self, erle_db: float, least: int = 16) -> bool:
        """The canceller removes at least ``erle_db`` from the echo (median of at least ``least`` chunks)."""
        return len(self._erle) >= least and float(np.median(np.fromiter(self._erle, dtype=np.float32))) >= erle_db
