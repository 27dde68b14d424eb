"""Audio facts the whole fleet agrees on: the bus rate, the rates a client may use, PCM arithmetic, WAV reading.

Audio on the bus is PCM16LE mono at :data:`BUS_RATE`: the gateway converts a
client's rate once, at the door, and every worker reads bus audio as it is.
Reply audio is made at the session's output rate by the TTS worker (which
reads it from the session record), so it is resampled once, where it is made.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr

#: Sample rate of every audio frame on the bus (what VAD, wake word and Whisper want).
BUS_RATE = 16000
#: Bytes per sample: PCM16.
SAMPLE_WIDTH = 2
#: Sample rates a client may send or ask for (Hz), inclusive.
MIN_RATE, MAX_RATE = 8000, 48000


class WavError(ValueError):
    """A file that is not a WAV this module can read (the message says why)."""


def rate_supported(rate: int) -> bool:
    """True when ``rate`` is within the range a client may use."""
    return MIN_RATE <= rate <= MAX_RATE


def clamp_rate(rate: int) -> int:
    """``rate`` moved into the supported range."""
    return min(max(rate, MIN_RATE), MAX_RATE)


def samples_in(pcm: bytes) -> int:
    """Number of PCM16 samples in ``pcm`` (a trailing odd byte is not a sample)."""
    return len(pcm) // SAMPLE_WIDTH


def seconds_in(pcm: bytes, rate: int) -> float:
    """Duration of PCM16 ``pcm`` at ``rate`` Hz."""
    return samples_in(pcm) / max(1, rate)


def samples_at(pcm: bytes, rate: int, target: int = BUS_RATE) -> int:
    """How many samples ``pcm`` (at ``rate``) makes once resampled to ``target``: positions in bus audio."""
    return samples_in(pcm) * target // max(1, rate)


def resample(samples: np.ndarray, rate: int, target: int = BUS_RATE) -> np.ndarray:
    """int16 samples from ``rate`` to ``target`` (the same array when they are equal)."""
    if rate == target:
        return samples
    return np.asarray(soxr.resample(samples, rate, target), dtype=np.int16)


def read_wav(path: Path | str, rate: int = BUS_RATE) -> np.ndarray:
    """A WAV file as int16 mono at ``rate`` (channels mixed down, resampled with soxr).

    Raises :class:`FileNotFoundError` for a missing file and :class:`WavError`
    for anything that is not 8, 16 or 32-bit PCM WAV.
    """
    try:
        with wave.open(str(path), "rb") as src:
            channels, width, src_rate = src.getnchannels(), src.getsampwidth(), src.getframerate()
            raw = src.readframes(src.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path} is not a PCM WAV file ({exc})") from None
    if width == 1:  # 8-bit WAV is unsigned
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    else:
        raise WavError(f"{path}: {8 * width}-bit WAV is not supported (use 8, 16 or 32-bit PCM)")
    if channels > 1:
        data = data[: len(data) // channels * channels].reshape(-1, channels).mean(axis=1)
    if src_rate != rate and len(data):
        data = soxr.resample(data, src_rate, rate)
    return np.clip(np.round(data * 32768.0), -32768, 32767).astype(np.int16)
