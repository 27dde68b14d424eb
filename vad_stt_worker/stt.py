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
        self.window = ShortWindow(self._model, encoder_window_s) if encoder_window_s < 30.0 else None

    @classmethod
    def from_settings(cls, settings: SttSettings) -> WhisperEngine:
        return cls(resolve_model(settings.model), settings.device, settings.compute_type, settings.cpu_threads,
                   settings.encoder_window_s)

    def transcribe(self, audio: np.ndarray, language: str | None) -> Transcript:
        started = time.perf_counter()
        short = self.window.transcribe(audio, language) if self.window is not None else None
        if short is not None:
            segments, detected = short
        else:
            decoded, info = self._model.transcribe(
                audio,
                language=language,
                beam_size=1,
                best_of=1,
                temperature=0.0,  # one greedy pass, no fallback re-decoding
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,  # we gate with Silero ourselves
                word_timestamps=False,
            )
            segments = [Segment(s.text, s.no_speech_prob, s.avg_logprob, s.compression_ratio) for s in decoded]
            detected = info.language
        result = Transcript(segments=segments, language=detected, audio_s=audio.size / BUS_RATE)
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


class ShortWindow:
    """One utterance through Whisper with the encoder window sized to it, not to 30 s.

    faster-whisper pads every window to 3000 mel frames (30 s), so a 2 s
    command costs as much encoder time as a 30 s one. CTranslate2's encoder
    takes shorter input (whisper.cpp's ``audio_ctx`` is the precedent): here
    the utterance's features are padded, as faster-whisper pads them, to
    ``floor_s`` (or to the speech plus :attr:`MARGIN_FRAMES`, whichever is
    longer), encoded once and decoded greedily in one pass, with no timestamp
    tokens and no seek loop (faster-whisper's would decode the padding again
    after a segment ending inside the window).

    Measured on 2026-11-30 (vad_stt_worker/README.md "Encoder window"): at
    10 s the final transcript of a command is ready 200-600 ms sooner and the
    synthetic corpora keep their word error rate, but tiny.en makes about 3
    points more word errors on real people's speech with any window under
    30 s, so it is off by default; below 10 s it also repeats itself.
    Timestamp tokens, which the first version of this turned on, lowered
    every segment's average log-probability by about 0.2 (what the
    hallucination filter judges) and predicted segment ends past the audio.

    ``transcribe`` returns None (the caller then runs the stock 30 s path)
    when the language is to be detected (detection is left to the full
    window), when the utterance does not fit the window, or when the decode
    ran away: more tokens than anyone speaks in that time, or a repetitive
    text (compression ratio above 2.4, Whisper's own threshold).
    """

    MARGIN_FRAMES = 100  # 1 s of padding after the speech, even past the floor
    MAX_FRAMES = 3000  # Whisper's 30 s
    MAX_COMPRESSION_RATIO = 2.4

    def __init__(self, model: Any, floor_s: float) -> None:
        self.model = model  # faster_whisper.WhisperModel
        self.floor_frames = int(floor_s * 100)
        self._tokenizers: dict[str, Any] = {}

    def frames(self, content_frames: int) -> int:
        """Encoder window (mel frames, 10 ms each) for an utterance of ``content_frames``."""
        return min(self.MAX_FRAMES, max(self.floor_frames, content_frames + self.MARGIN_FRAMES))

    @staticmethod
    def max_tokens(content_frames: int) -> int:
        """Room for fast speech (about 6 tokens a second) twice over: a decode that needs more is looping."""
        return 24 + 12 * content_frames // 100

    def _tokenizer(self, language: str) -> tuple[Any, list[int], list[int]]:
        if language not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe",
                                  language=language)
            prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
            suppress = list(get_suppressed_tokens(tokenizer, [-1]))  # faster-whisper's default set
            self._tokenizers[language] = (tokenizer, prompt, suppress)
        return self._tokenizers[language]

    def transcribe(self, audio: np.ndarray, language: str | None) -> tuple[list[Segment], str] | None:
        """``audio``: float32 mono 16 kHz; the segments and the language, or None for the stock path."""
        from faster_whisper.transcribe import get_compression_ratio

        multilingual = self.model.model.is_multilingual
        if language is None and multilingual:
            return None
        language = language if multilingual else "en"  # as faster-whisper does for an English-only model
        features = self.model.feature_extractor(audio)
        content = features.shape[-1] - 1  # the last frame is faster-whisper's 160-sample padding
        if content + self.MARGIN_FRAMES > self.MAX_FRAMES:
            return None
        window = np.zeros((features.shape[0], self.frames(content)), dtype=np.float32)
        window[:, :content] = features[:, :content]  # zeros after it: faster-whisper's padding
        encoded = self.model.encode(window)
        tokenizer, prompt, suppress = self._tokenizer(language)
        limit = self.max_tokens(content)
        result = self.model.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            max_length=len(prompt) + limit,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppress,
        )[0]
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens)
        compression_ratio = get_compression_ratio(text.strip())
        if len(tokens) >= limit or compression_ratio > self.MAX_COMPRESSION_RATIO:
            log.debug("short window ran away (%d tokens, compression %.1f); 30 s window", len(tokens),
                      compression_ratio)
            return None
        # As faster-whisper computes it (length penalty 1), so the hallucination filter's thresholds hold.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if not text.strip():
            return [], language
        return [Segment(text, result.no_speech_prob, avg_logprob, compression_ratio)], language


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
