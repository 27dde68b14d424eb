"""Short feedback tones, made with numpy: "listening" and "thinking".

Soft sine notes with raised-cosine edges (no clicks), quiet by default: they
tell the user what the assistant is doing without talking over anyone.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

Cue = Literal["listening", "thinking"]

#: (frequency Hz, duration s) notes, with a short gap between them.
_NOTES: dict[str, list[tuple[float, float]]] = {
    "listening": [(660.0, 0.07), (880.0, 0.09)],  # rising: "go ahead"
    "thinking": [(523.0, 0.06), (523.0, 0.06)],  # two soft blips: "working on it"
}
_GAP_S = 0.03
_EDGE_S = 0.012


def _note(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = np.sin(2 * np.pi * freq * t)
    edge = min(int(_EDGE_S * rate), len(t) // 2)
    if edge:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
        wave[:edge] *= ramp
        wave[-edge:] *= ramp[::-1]
    return wave


@functools.lru_cache(maxsize=16)
def tone(cue: Cue, rate: int, volume: float = 0.15) -> bytes:
    """The ``cue`` as PCM16 mono bytes at ``rate``."""
    gap = np.zeros(int(_GAP_S * rate))
    parts: list[np.ndarray] = []
    for freq, seconds in _NOTES[cue]:
        parts += [_note(freq, seconds, rate), gap]
    samples = np.concatenate(parts) * max(0.0, min(volume, 1.0))
    return np.round(samples * 32767).astype(np.int16).tobytes()
