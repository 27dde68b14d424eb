"""Wake words with openWakeWord 0.4.0 and the ONNX models it ships.

The models (melspectrogram, speech embedding, one classifier per wake word)
are loaded once per process; each session gets a :class:`WakeDetector` that
shares those ONNX sessions (``InferenceSession.run`` is thread-safe) but keeps
its own streaming feature buffers.
"""

from __future__ import annotations

import copy
import inspect
import re
import warnings
from collections import defaultdict, deque
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import openwakeword

from voicefleet.audio import BUS_RATE

#: openWakeWord scores 80 ms frames.
FRAME_SAMPLES = 1280
#: The wake words whose models ship in openwakeword 0.4.0, by the name sessions use.
WAKE_WORDS = {
    "hey_jarvis": "hey_jarvis_v0.1.onnx",
    "hey_mycroft": "hey_mycroft_v0.1.onnx",
    "alexa": "alexa_v0.1.onnx",
}
#: What Whisper may write for the wake word when the command follows it closely.
_SPOKEN = {
    "hey_jarvis": r"(?:hey|hi|a)?[\s,]*jarvis",
    "hey_mycroft": r"(?:hey|hi|a)?[\s,]*my[\s-]?craft|(?:hey|hi|a)?[\s,]*mycroft",
    "alexa": r"alexa",
}


def normalize_name(name: str | None) -> str | None:
    """``"Hey Jarvis"`` -> ``"hey_jarvis"``; empty or None -> None (always listening)."""
    if not name or not name.strip():
        return None
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def strip_wake_word(text: str, word: str | None) -> str:
    """Remove the wake word from the start of a transcript ("Jarvis, what time is it?")."""
    if not word or word not in _SPOKEN:
        return text
    stripped = re.sub(rf"^\s*(?:{_SPOKEN[word]})\b[\s,.!?]*", "", text, flags=re.IGNORECASE)
    return stripped[:1].upper() + stripped[1:] if stripped != text else text


class WakeModels:
    """The bundled wake word models, loaded once and shared by every session."""

    def __init__(self, directory: Path, words: tuple[str, ...] = tuple(WAKE_WORDS)) -> None:
        unknown = [w for w in words if w not in WAKE_WORDS]
        if unknown:
            raise ValueError(f"no bundled model for wake word(s) {unknown}; known: {sorted(WAKE_WORDS)}")
        self.words = tuple(words)
        paths = [str(directory / WAKE_WORDS[w]) for w in self.words]
        kwargs: dict[str, Any] = {
            "wakeword_model_paths": paths,
            "melspec_onnx_model_path": str(directory / "melspectrogram.onnx"),
            "embedding_onnx_model_path": str(directory / "embedding_model.onnx"),
        }
        # Some 0.4.x builds default to tflite; ask for ONNX where the switch exists.
        if "inference_framework" in inspect.signature(openwakeword.Model).parameters:
            kwargs["inference_framework"] = "onnx"
        with warnings.catch_warnings():
            # openWakeWord asks onnxruntime for CUDA first; the CPU fallback is what we want.
            warnings.filterwarnings("ignore", message=".*CUDAExecutionProvider.*")
            self._template = openwakeword.Model(**kwargs)
        # Model keys are file names without ".onnx" ("hey_jarvis_v0.1").
        self._keys = {w: Path(WAKE_WORDS[w]).stem for w in self.words}
        self._blank_features = self._template.preprocessor.feature_buffer.copy()

    def detector(self, word: str) -> WakeDetector:
        """A detector for one session, listening for ``word`` only."""
        if word not in self._keys:
            raise KeyError(word)
        key = self._keys[word]
        # Shallow copies share the ONNX sessions; the buffers below are the
        # per-stream state of openwakeword 0.4.0 (pinned), reset to a fresh start.
        model = copy.copy(self._template)
        model.models = {key: self._template.models[key]}
        model.prediction_buffer = defaultdict(partial(deque, maxlen=30))
        features = copy.copy(self._template.preprocessor)
        # Upstream keeps 10 s of raw samples and copies them into a list on every
        # frame; 2 s is more than the melspectrogram ever looks back.
        features.raw_data_buffer = deque(maxlen=2 * BUS_RATE)
        features.melspectrogram_buffer = np.ones((76, 32))
        features.accumulated_samples = 0
        features.feature_buffer = self._blank_features.copy()
        model.preprocessor = features
        return WakeDetector(word, key, model)


class WakeDetector:
    """Scores 80 ms frames of one session's audio for one wake word."""

    def __init__(self, word: str, key: str, model: openwakeword.Model) -> None:
        self.word = word
        self._key = key
        self._model = model

    def score(self, frame: np.ndarray) -> float:
        """Score (0-1) of the wake word ending in this 1280-sample int16 frame."""
        return float(self._model.predict(frame)[self._key])
