"""Audio on its way out: resampled to the asked rate, cut into short pieces.

The last piece of a sentence must be marked ``last``, but synthesis yields
audio part by part without saying which part ends it. :class:`PieceCutter`
therefore always holds a little audio back; :meth:`PieceCutter.finish` hands
it over as the final piece once synthesis is done.
"""

from __future__ import annotations

import numpy as np
import soxr  # type: ignore[import-untyped]


class PieceCutter:
    """Resample int16 mono from ``in_rate`` to ``out_rate`` and cut it into pieces.

    Resampling is streamed (one soxr state for the whole sentence), so piece
    boundaries leave no clicks and the total length is exact.
    """

    def __init__(self, in_rate: int, out_rate: int, piece_samples: int) -> None:
        if piece_samples < 1:
            raise ValueError("piece_samples must be positive")
        self.out_rate = out_rate
        self.piece_samples = piece_samples
        self._resampler = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16") if in_rate != out_rate else None
        self._pending = np.empty(0, dtype=np.int16)
        self.samples_out = 0

    def push(self, audio: np.ndarray) -> list[bytes]:
        """Full pieces ready to send; at least one sample stays held back."""
        audio = np.asarray(audio, dtype=np.int16)
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio)
        self._pending = np.concatenate([self._pending, audio])
        return self._cut()

    def finish(self) -> list[bytes]:
        """The remaining pieces; the last of them (possibly empty) ends the sentence."""
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.empty(0, dtype=np.int16), last=True)
            self._pending = np.concatenate([self._pending, tail])
        pieces = self._cut()
        pieces.append(self._take(len(self._pending)))
        return pieces

    def _cut(self) -> list[bytes]:
        pieces: list[bytes] = []
        # Strictly greater: something is always left for the final piece.
        while len(self._pending) > self.piece_samples:
            pieces.append(self._take(self.piece_samples))
        return pieces

    def _take(self, n: int) -> bytes:
        piece, self._pending = self._pending[:n], self._pending[n:]
        self.samples_out += len(piece)
        return piece.tobytes()
