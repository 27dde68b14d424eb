"""Real speech for tests, made by the Piper voice at test time.

Tests that need a person talking call :func:`say`; the audio is real synthetic
speech (not a recording committed to the repo), resampled with soxr.
"""

from __future__ import annotations

import functools
import wave
from pathlib import Path

import numpy as np
import soxr

from voicefleet.models import piper_voice


@functools.lru_cache(maxsize=1)
def _voice():  # type: ignore[no-untyped-def]
    from piper import PiperVoice  # imported lazily: only tests with speech pay for it

    return PiperVoice.load(str(piper_voice()))


@functools.lru_cache(maxsize=64)
def _say(text: str, rate: int, length_scale: float) -> bytes:
    from piper import SynthesisConfig

    voice = _voice()
    config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
    audio = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, syn_config=config)])
    if rate != voice.config.sample_rate:
        audio = soxr.resample(audio, voice.config.sample_rate, rate).astype(np.int16)
    return audio.tobytes()


def say(text: str, rate: int = 16000, length_scale: float = 1.0) -> np.ndarray:
    """``text`` spoken by the Piper voice as int16 mono at ``rate``."""
    return np.frombuffer(_say(text, rate, length_scale), dtype=np.int16).copy()


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def noise(seconds: float, rate: int = 16000, level: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * rate)) * level * 32767).clip(-32768, 32767).astype(np.int16)


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(audio.astype(np.int16).tobytes())
    return path
