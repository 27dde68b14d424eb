"""WAV files in and out, resampling, and finding where speech ends in a recording."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr

from .protocol import UsageError


def read_wav(path: Path, rate: int = 16000) -> np.ndarray:
    """A WAV file as int16 mono at ``rate`` (channels mixed down, resampled with soxr)."""
    try:
        with wave.open(str(path), "rb") as src:
            channels, width, src_rate = src.getnchannels(), src.getsampwidth(), src.getframerate()
            raw = src.readframes(src.getnframes())
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (wave.Error, EOFError) as exc:
        raise UsageError(f"{path} is not a PCM WAV file ({exc})") from None
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 4:
        samples = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    else:
        raise UsageError(f"{path}: {8 * width}-bit WAV is not supported (use 8, 16 or 32-bit PCM)")
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    if src_rate != rate and len(samples):
        samples = soxr.resample(samples, src_rate, rate)
    return to_int16(samples)


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


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
    return speech_end(samples, 16000, floor=floor) is None
