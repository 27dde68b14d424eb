"""WAV files in and out, resampling, and finding where speech ends in a recording."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr

from voicefleet import audio
from voicefleet.audio import BUS_RATE

from .protocol import UsageError


def read_wav(path: Path, rate: int = BUS_RATE) -> np.ndarray:
    """A WAV file as int16 mono at ``rate``; a missing or unreadable file is a :class:`UsageError`."""
    try:
        return audio.read_wav(path, rate)
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except audio.WavError as exc:
        raise UsageError(str(exc)) from None


def write_wav(path: Path, pcm: bytes | np.ndarray, rate: int) -> Path:
    """Save PCM16 mono; the folder is created if needed."""
    data = pcm.astype(np.int16).tobytes() if isinstance(pcm, np.ndarray) else pcm
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data)
    return path


def resample(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """PCM16 mono bytes from one rate to another (a copy when they are equal)."""
    if src_rate == dst_rate or not pcm:
        return bytes(pcm)
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16)
    return np.asarray(soxr.resample(samples, src_rate, dst_rate), dtype=np.int16).tobytes()


def speech_end(samples: np.ndarray, rate: int, window_ms: float = 10.0, below_peak_db: float = 35.0,
               floor: float = 100.0) -> float | None:
    """Seconds from the start to the acoustic end of speech, found by energy.

    The end is the last ``window_ms`` window whose RMS is within
    ``below_peak_db`` of the loudest window (and above ``floor``, so that a
    recording of near-silence has no speech at all). None when nothing is loud
    enough. This is the origin of voice-to-voice latency: it depends on the
    recording only, never on what the server decided.
    """
    size = max(1, int(rate * window_ms / 1000))
    count = len(samples) // size
    if count == 0:
        return None
    windows = samples[: count * size].astype(np.float64).reshape(count, size)
    rms = np.sqrt((windows**2).mean(axis=1))
    threshold = max(float(rms.max()) * 10 ** (-below_peak_db / 20), floor)
    loud = np.flatnonzero(rms >= threshold)
    if len(loud) == 0:
        return None
    return float((loud[-1] + 1) * size / rate)


def is_silent(pcm: bytes, floor: float = 100.0) -> bool:
    """True when PCM16 audio has no part louder than ``floor`` RMS."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16)
    return speech_end(samples, BUS_RATE, floor=floor) is None
