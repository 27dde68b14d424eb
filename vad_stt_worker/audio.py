"""PCM helpers for the STT worker: levels, sample conversion, and a growing audio history.

The bus rate, resampling and WAV reading are shared: :mod:`voicefleet.audio`.
"""

from __future__ import annotations

import numpy as np

#: Level reported for digital silence (log of zero).
FLOOR_DB = -100.0


def level_db(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dB relative to full scale."""
    if samples.size == 0:
        return FLOOR_DB
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float32)))))
    return max(FLOOR_DB, 20.0 * float(np.log10(rms / 32768.0 + 1e-12)))


def to_float(samples: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1], what Whisper wants."""
    return samples.astype(np.float32) / 32768.0


def from_bytes(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16)


class AudioHistory:
    """The session's recent input audio, addressed by absolute sample position.

    Only what an utterance may still need is kept: the pre-roll while idle,
    everything since the utterance began while one is open. Chunks are kept as
    a list (appending is O(1)); they are joined only when a slice is taken.
    """

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._base = 0  # absolute position of the first kept sample
        self._size = 0

    @property
    def start(self) -> int:
        """Absolute position of the first sample kept."""
        return self._base

    @property
    def end(self) -> int:
        return self._base + self._size

    def append(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self._size += samples.size

    def slice(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(start, self._base), min(stop, self.end)
        if stop <= start:
            return np.zeros(0, dtype=np.int16)
        joined = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        if len(self._chunks) > 1:
            self._chunks = [joined]  # join once; later slices of this utterance reuse it
        return joined[start - self._base : stop - self._base].copy()

    def keep_from(self, position: int) -> None:
        """Forget whole chunks that end before ``position``."""
        while self._chunks and self._base + self._chunks[0].size <= position:
            first = self._chunks.pop(0)
            self._base += first.size
            self._size -= first.size
