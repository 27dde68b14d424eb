"""Speech to text: a small engine interface and its faster-whisper implementation."""

from __future__ import annotations

import abc
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicefleet.audio import BUS_RATE
from voicefleet.models import whisper_base_dir, whisper_tiny_en_dir

from .settings import SttSettings

log = logging.getLogger(__name__)


@dataclass
class Segment:
    """One decoded segment with the confidence figures the hallucination filter needs."""

    text: str
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 1.0


@dataclass
class FileSegment:
    """One segment of a whole recording, with its times (seconds) and, when asked, its words."""

    text: str
    start: float
    end: float
    words: list[tuple[str, float, float, float]] = field(default_factory=list)  # word, start, end, probability
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0


@dataclass
class FileTranscript:
    """A recording being transcribed: ``segments`` decodes lazily, one segment per step."""

    language: str | None
    duration: float
    segments: Iterator[FileSegment]
    model: str = ""


@dataclass
class Transcript:
    """What the engine heard in one utterance."""

    segments: list[Segment] = field(default_factory=list)
    language: str | None = None
    audio_s: float = 0.0
    elapsed_s: float = 0.0  # inference time

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


class SttEngine(abc.ABC):
    """Transcribes one utterance; implementations must be safe to call from one worker thread."""

    name = "stt"

    @abc.abstractmethod
    def transcribe(self, audio: np.ndarray, language: str | None) -> Transcript:
        """``audio``: float32 mono 16 kHz in [-1, 1]; ``language`` None = detect."""

    def warm(self) -> None:
        """Run once on silence so the first real request is not the slow one."""
        self.transcribe(np.zeros(BUS_RATE, dtype=np.float32), "en")

    def transcribe_file(self, audio: np.ndarray, language: str | None, prompt: str, words: bool) -> FileTranscript:
        """A whole recording with segment (and word) times; ``language`` None = detect."""
        raise NotImplementedError(f"{self.name} cannot transcribe recordings")

    def models(self) -> list[dict[str, Any]]:
        """The models this engine runs, for the health key: name, languages, description."""
        return []


class WhisperEngine(SttEngine):
    """faster-whisper (CTranslate2) with fast, deterministic decoding options."""

    name = "faster-whisper"

    def __init__(
        self, model: str, device: str = "cpu", compute_type: str = "", cpu_threads: int = 0,
        encoder_window_s: float = 30.0,
    ) -> None:
        from faster_whisper import WhisperModel  # heavy import, only where the engine is built

        self.short_window = encoder_window_s < 30.0
        if self.short_window:
            shorten_encoder_window(int(encoder_window_s * 100))

        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        compute_type = compute_type or ("int8" if device == "cpu" else "float16")
        self.description = f"{model} on {device} ({compute_type})"
        self.model_name = model_name(model)
        try:
            self._model = WhisperModel(
                model,
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads or (os.cpu_count() or 1),
                num_workers=1,
            )
        except Exception as exc:  # hub unreachable, bad folder, missing CUDA...
            raise RuntimeError(
                f"could not load the Whisper model {model!r} on {device} ({exc}); set VF_STT_MODEL "
                f"to a CTranslate2 Whisper folder, or leave it empty for the packaged Whisper base"
            ) from exc

    @classmethod
    def from_settings(cls, settings: SttSettings) -> WhisperEngine:
        return cls(resolve_model(settings.model), settings.device, settings.compute_type, settings.cpu_threads,
                   settings.encoder_window_s)

    def transcribe(self, audio: np.ndarray, language: str | None) -> Transcript:
        started = time.perf_counter()
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=1,
            best_of=1,
            temperature=0.0,  # one greedy pass, no fallback re-decoding
            # Timestamp tokens let a short encoder window end cleanly instead of repeating itself.
            without_timestamps=not self.short_window,
            condition_on_previous_text=False,
            vad_filter=False,  # we gate with Silero ourselves
            word_timestamps=False,
        )
        result = Transcript(
            segments=[Segment(s.text, s.no_speech_prob, s.avg_logprob, s.compression_ratio) for s in segments],
            language=info.language,
            audio_s=audio.size / BUS_RATE,
        )
        result.elapsed_s = time.perf_counter() - started
        return result

    def transcribe_file(self, audio: np.ndarray, language: str | None, prompt: str, words: bool) -> FileTranscript:
        segments, info = self._model.transcribe(
            audio,
            language=language,
            initial_prompt=prompt or None,
            beam_size=1,
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
            word_timestamps=words,
        )

        def decoded() -> Iterator[FileSegment]:
            for s in segments:
                yield FileSegment(
                    text=s.text,
                    start=round(s.start, 3),
                    end=round(s.end, 3),
                    words=[(w.word, round(w.start, 3), round(w.end, 3), round(w.probability, 4))
                           for w in s.words or []],
                    avg_logprob=s.avg_logprob,
                    no_speech_prob=s.no_speech_prob,
                    compression_ratio=s.compression_ratio,
                    temperature=s.temperature or 0.0,
                )

        return FileTranscript(info.language, audio.size / BUS_RATE, decoded(), self.model_name)

    def models(self) -> list[dict[str, Any]]:
        languages = list(getattr(self._model, "supported_languages", None) or ["en"])
        return [{"name": self.model_name, "languages": languages, "description": self.description}]


class LanguageRoutedEngine(SttEngine):
    """An English-only model for English, a multilingual one for every other language and for detection.

    Whisper tiny.en is about 2x faster than base on a short command; it only
    knows English, so the multilingual model stays for the rest.
    """

    def __init__(self, english: SttEngine, multilingual: SttEngine) -> None:
        self.english = english
        self.multilingual = multilingual
        self.name = f"{english.name} (en) / {multilingual.name}"
        self.description = (
            f"{getattr(english, 'description', english.name)} for English, "
            f"{getattr(multilingual, 'description', multilingual.name)} otherwise"
        )

    def engine_for(self, language: str | None) -> SttEngine:
        return self.english if language == "en" else self.multilingual

    def transcribe(self, audio: np.ndarray, language: str | None) -> Transcript:
        return self.engine_for(language).transcribe(audio, language)

    def transcribe_file(self, audio: np.ndarray, language: str | None, prompt: str, words: bool) -> FileTranscript:
        return self.engine_for(language).transcribe_file(audio, language, prompt, words)

    def models(self) -> list[dict[str, Any]]:
        return [*self.english.models(), *self.multilingual.models()]

    def warm(self) -> None:
        self.english.warm()
        self.multilingual.warm()


def build_engine(settings: SttSettings) -> SttEngine:
    """Whisper per the settings: one model for every language, or an English one beside the multilingual one."""
    multilingual = WhisperEngine.from_settings(settings)
    english_model = resolve_english_model(settings.model_en)
    if english_model is None:
        return multilingual
    english = WhisperEngine(english_model, settings.device, settings.compute_type, settings.cpu_threads,
                            settings.encoder_window_s)
    return LanguageRoutedEngine(english, multilingual)


def resolve_english_model(model_en: str) -> str | None:
    """'' -> None (the multilingual model serves English too); 'tiny.en' -> the packaged folder; else as is."""
    if not model_en:
        return None
    if model_en == "tiny.en":
        return str(whisper_tiny_en_dir())
    return resolve_model(model_en)


def shorten_encoder_window(min_frames: int) -> None:
    """Let Whisper's encoder see a window sized to the utterance instead of 30 s.

    faster-whisper pads every window to 3000 mel frames (30 s), so a 2 s command
    costs as much encoder time as a 30 s one. CTranslate2's encoder accepts
    shorter input (like whisper.cpp's ``audio_ctx``): padding to the speech plus
    one second, and never below ``min_frames``, makes the encoder about 4x faster
    on commands. Too short a window makes Whisper repeat itself, hence the floor
    and timestamps on; it also costs some accuracy (measured in the README), so
    it is off by default (VF_STT_ENCODER_WINDOW_S=30). faster-whisper exposes no
    setting for this, so its module-level padding function is wrapped, once per
    process.
    """
    import faster_whisper.transcribe as fwt

    stock = getattr(fwt, "_stock_pad_or_trim", fwt.pad_or_trim)
    fwt._stock_pad_or_trim = stock  # type: ignore[attr-defined]

    def pad_to_speech(array: np.ndarray, length: int = 3000, *, axis: int = -1) -> np.ndarray:
        return stock(array, min(length, max(min_frames, array.shape[axis] + 100)), axis=axis)

    fwt.pad_or_trim = pad_to_speech


def resolve_model(model: str) -> str:
    """'' -> the packaged Whisper base folder; a folder stays a folder; anything else is a size name."""
    if not model:
        return str(whisper_base_dir())
    path = Path(model).expanduser()
    return str(path) if path.exists() else model


def model_name(model: str) -> str:
    """What clients call a model: ``whisper-base``, ``whisper-tiny.en``, or a folder's or size's name."""
    packaged = {
        "whisper-base": _packaged(lambda: whisper_base_dir(prepare=False)),
        "whisper-tiny.en": _packaged(whisper_tiny_en_dir),
    }
    for name, folder in packaged.items():
        if folder is not None and Path(model) == folder:
            return name
    base = Path(model).name or model
    return base if base.startswith(("whisper", "faster-whisper")) else f"whisper-{base}"


def _packaged(find: Callable[[], Path]) -> Path | None:
    try:
        return Path(find())
    except Exception:  # not installed or not prepared: no folder can be it
        return None


def normalize_language(language: str | None) -> str | None:
    """'' and 'auto' mean detect (None)."""
    if not language or language.strip().lower() == "auto":
        return None
    return language.strip().lower()


def _cuda_available() -> bool:
    try:
        import ctranslate2

        return bool(ctranslate2.get_cuda_device_count())
    except Exception:
        return False
