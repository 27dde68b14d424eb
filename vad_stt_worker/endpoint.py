"""End of turn from a model: smart-turn v3 says whether the user's sentence is complete.

smart-turn v3 (Daily, BSD-2-Clause) is a small Whisper-encoder classifier that
hears the last 8 s of the user's speech and answers the probability that they
have finished their turn (intonation and words, not silence). It ships inside
the ``pipecat-ai`` wheel; only its ONNX file is used (``pip install --no-deps``),
since importing pipecat pulls in its dependencies (loguru, ...).

The feature extraction below follows pipecat's
``pipecat/audio/turn/smart_turn/_whisper_features.py`` (BSD-2-Clause, itself
derived from Hugging Face's ``WhisperFeatureExtractor``, Apache-2.0):
Whisper's 80-bin log-mel spectrogram of an 8 s window, numpy only.
A test checks it against pipecat's own file.

The :class:`~vad_stt_worker.turn.TurnDetector` asks it at each pause (the
listener's analysis thread runs it, never the event loop).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from voicefleet.audio import BUS_RATE

SAMPLE_RATE = BUS_RATE  # smart-turn takes 16 kHz audio, the bus rate
WINDOW_S = 8
_N_FFT, _HOP, _N_MELS = 400, 160, 80


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels[log_region] = 15.0 + np.log(freq[log_region] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freq = 200.0 * mels / 3.0
    log_region = mels >= 15.0
    freq[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log_region] - 15.0))
    return freq


def _mel_filters() -> np.ndarray:
    """Slaney-normalized triangular filters, shape (201 frequency bins, 80 mels)."""
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array([SAMPLE_RATE / 2.0]))[0], _N_MELS + 2))
    fft_freqs = np.linspace(0, SAMPLE_RATE // 2, _N_FFT // 2 + 1)
    slopes = edges[None, :] - fft_freqs[:, None]
    widths = np.diff(edges)
    down, up = -slopes[:, :-2] / widths[:-1], slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (edges[2 : _N_MELS + 2] - edges[:_N_MELS]))[None, :]


_FILTERS = _mel_filters()
_HANN = np.hanning(_N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def log_mel_features(audio: np.ndarray) -> np.ndarray:
    """Whisper log-mel features of exactly 8 s of float audio (padded or cut at the end): (80, 800) float32."""
    n = SAMPLE_RATE * WINDOW_S
    x = np.asarray(audio, dtype=np.float32)
    x = np.pad(x, (0, n - x.size)) if x.size < n else x[:n]
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (_N_FFT // 2, _N_FFT // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = (np.abs(np.fft.rfft(frames * _HANN, axis=-1)) ** 2).T
    log_spec = np.log10(np.maximum(1e-10, _FILTERS.T @ power))[:, :-1]
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


class EndOfTurnModel:
    """smart-turn v3 on ONNX Runtime: P(the user finished their turn) for the audio so far."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.description = path.name
        self.calls = 0
        self.elapsed_s = 0.0

    def complete_probability(self, audio: np.ndarray) -> float:
        """``audio``: int16 mono 16 kHz, the utterance up to now; only its last 8 s are heard."""
        started = time.perf_counter()
        window = SAMPLE_RATE * WINDOW_S
        x = audio[-window:].astype(np.float32) / 32768.0
        x = np.pad(x, (window - x.size, 0))  # the model was trained with silence before, not after
        features = log_mel_features(x)[None, :, :]
        outputs = self._session.run(None, {"input_features": features})
        probability = np.asarray(outputs[0]).reshape(-1)[0]
        self.calls += 1
        self.elapsed_s += time.perf_counter() - started
        return float(probability)

    def warm(self) -> None:
        self.complete_probability(np.zeros(SAMPLE_RATE, dtype=np.int16))
