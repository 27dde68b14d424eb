"""The jitter buffer between the network and the speaker, flushable at once.

Reply audio arrives in bursts (a sentence at a time); the speaker pulls a
fixed number of samples from its own thread every few milliseconds.
:class:`PlaybackBuffer` sits between them: it holds back the start of a reply
until ``prebuffer`` samples are queued (or the reply has ended), plays out
what is left after ``audio_end``, and drops everything on :meth:`flush`
(barge-in). Feedback tones are mixed on top and never count as reply audio,
so they do not make the client report "playback started".

Pure logic plus a lock: the speaker thread calls :meth:`read`, the event loop
calls the rest. ``on_state(playing)`` is called when reply playback starts and
stops, from whichever thread noticed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np


class PlaybackBuffer:
    """Reply audio waiting for the speaker (PCM16 mono at one rate)."""

    def __init__(self, prebuffer_samples: int = 0, on_state: Callable[[bool], None] | None = None) -> None:
        self.prebuffer = prebuffer_samples
        self.on_state = on_state or (lambda playing: None)
        self._lock = threading.Lock()
        self._chunks: deque[np.ndarray] = deque()
        self._queued = 0
        self._cue = np.zeros(0, dtype=np.int32)
        self._ended = True
        self._playing = False
        #: Samples of reply audio handed to the speaker so far (for tests and meters).
        self.played = 0

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def queued(self) -> int:
        return self._queued

    def begin(self) -> None:
        """A reply's audio starts (``audio_start``)."""
        with self._lock:
            self._ended = False

    def push(self, pcm: bytes) -> None:
        if not pcm:
            return
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16)
        with self._lock:
            self._chunks.append(samples)
            self._queued += len(samples)

    def end(self) -> None:
        """The reply's audio is complete (``audio_end``): play out the rest, then go idle."""
        with self._lock:
            self._ended = True
        self._maybe_finish()

    def flush(self) -> bool:
        """Drop all queued reply audio now; True if it was playing."""
        with self._lock:
            self._chunks.clear()
            self._queued = 0
            self._ended = True
            was_playing, self._playing = self._playing, False
        if was_playing:
            self.on_state(False)
        return was_playing

    def cue(self, pcm: bytes) -> None:
        """Mix a feedback tone into the output, on top of whatever plays."""
        tone = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16).astype(np.int32)
        with self._lock:
            if len(self._cue) < len(tone):
                self._cue = np.concatenate([self._cue, np.zeros(len(tone) - len(self._cue), np.int32)])
            self._cue[: len(tone)] += tone

    def read(self, count: int) -> bytes:
        """``count`` samples for the speaker: reply audio and tones, zeros when idle."""
        out = np.zeros(count, dtype=np.int32)
        started = False
        with self._lock:
            if not self._playing and self._queued and (self._queued >= self.prebuffer or self._ended):
                self._playing = started = True
            filled = 0
            if self._playing:
                while filled < count and self._chunks:
                    head = self._chunks[0]
                    take = min(count - filled, len(head))
                    out[filled : filled + take] = head[:take]
                    filled += take
                    if take == len(head):
                        self._chunks.popleft()
                    else:
                        self._chunks[0] = head[take:]
                self._queued -= filled
                self.played += filled
            if len(self._cue):
                take = min(count, len(self._cue))
                out[:take] += self._cue[:take]
                self._cue = self._cue[take:]
        if started:
            self.on_state(True)
        self._maybe_finish()
        return np.clip(out, -32768, 32767).astype(np.int16).tobytes()

    def _maybe_finish(self) -> None:
        with self._lock:
            finished = self._playing and self._ended and not self._queued
            if finished:
                self._playing = False
        if finished:
            self.on_state(False)
