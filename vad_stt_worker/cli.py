"""``python -m vad_stt_worker transcribe FILE.wav``: a file through the worker's own VAD/STT path.

Transcript lines go to stdout (one per utterance), logs to stderr. With a
wake word, ``wake <seconds> <score>`` is printed when it fires and only what
follows a wake word is transcribed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from voicefleet.audio import BUS_RATE, read_wav

from .listener import Listener
from .models import Models
from .recognizer import Recognizer
from .settings import SttSettings
from .stt import normalize_language
from .turn import Final, SpeechEnd, SpeechStart, TurnConfig, WakeDetected, ms
from .wake import normalize_name

log = logging.getLogger(__name__)

#: The file is fed in frames of this many samples, like a client would send it.
FEED_SAMPLES = 1600


@dataclass
class FileResult:
    """Everything found in one file."""

    utterances: list[dict[str, Any]] = field(default_factory=list)
    wakes: list[dict[str, Any]] = field(default_factory=list)
    audio_s: float = 0.0
    elapsed_s: float = 0.0
    stt_s: float = 0.0
    vad_ms_per_chunk: float = 0.0
    wake_ms_per_frame: float = 0.0
    endpoint_calls: int = 0
    endpoint_s: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(u["text"] for u in self.utterances if u["text"])


def transcribe_audio(
    audio: np.ndarray,
    models: Models,
    config: TurnConfig,
    language: str | None,
    wake_word: str | None = None,
    out: TextIO | None = None,
) -> FileResult:
    """Run int16 16 kHz audio through the listener and recognizer; print lines to ``out`` as found."""
    recognizer = Recognizer(models.engine, models.filter)
    listener = Listener(config, models.wake, wake_word, models.endpoint)
    result = FileResult(audio_s=audio.size / BUS_RATE)
    started = time.perf_counter()
    starts: dict[int, int] = {}
    for offset in range(0, audio.size, FEED_SAMPLES):
        _handle(listener.feed(audio[offset : offset + FEED_SAMPLES]), recognizer, language, starts, result, out)
    _handle(listener.finish(), recognizer, language, starts, result, out)
    result.elapsed_s = time.perf_counter() - started
    stats = listener.stats
    result.vad_ms_per_chunk = 1000 * stats.vad_s / max(1, stats.vad_chunks)
    result.wake_ms_per_frame = 1000 * stats.wake_s / max(1, stats.wake_frames)
    result.endpoint_calls, result.endpoint_s = stats.endpoint_calls, stats.endpoint_s
    return result


def _handle(
    actions: list[Any],
    recognizer: Recognizer,
    language: str | None,
    starts: dict[int, int],
    result: FileResult,
    out: TextIO | None,
) -> None:
    for action in actions:
        if isinstance(action, WakeDetected):
            seconds = action.position / BUS_RATE
            result.wakes.append({"word": action.word, "seconds": round(seconds, 3), "score": action.score})
            if out:
                print(f"wake {seconds:.2f} {action.score:.3f}", file=out, flush=True)
        elif isinstance(action, SpeechStart):
            starts[action.utterance] = starts.get(action.continues, action.position)
            if action.continues:  # the speaker went on: this utterance's text replaces the ended one's
                result.utterances = [u for u in result.utterances if u["utterance"] != action.continues]
        elif isinstance(action, SpeechEnd):
            log.debug("speech %d ended (%s) at %.0f ms", action.utterance, action.reason, ms(action.position))
        elif isinstance(action, Final):
            wake = result.wakes[-1]["word"] if result.wakes else None
            rec = recognizer.recognize(action.audio, language, action.voiced_ms, wake)
            result.stt_s += rec.transcript.elapsed_s
            result.utterances.append(
                {
                    "utterance": action.utterance,
                    "start_s": round(starts.get(action.utterance, 0) / BUS_RATE, 3),
                    "end_s": round(action.speech_end / BUS_RATE, 3),
                    "text": rec.text,
                    "raw_text": rec.transcript.text,
                    "language": rec.transcript.language,
                    "voiced_ms": round(action.voiced_ms),
                    "stt_ms": round(rec.transcript.elapsed_s * 1000),
                    "segments": [vars(s) for s in rec.transcript.segments],
                }
            )
            if out and rec.text:
                print(rec.text, file=out, flush=True)


def run(
    settings: SttSettings,
    path: Path,
    wake_word: str | None,
    as_json: bool,
    language: str | None,
    models: Models | None = None,
) -> int:
    """The ``transcribe`` command (``models``: already loaded ones, else loaded here)."""
    if not path.exists():
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    word = normalize_name(wake_word)
    try:
        audio = read_wav(path)
    except (OSError, EOFError, ValueError) as exc:  # wave raises plain errors on bad files
        print(f"error: cannot read {path} as a WAV file ({exc})", file=sys.stderr)
        return 2
    loaded = time.perf_counter()
    models = models or Models.load(settings, warm=False)
    load_s = time.perf_counter() - loaded
    if word is not None and word not in models.wake.words:
        print(f"error: unknown wake word {wake_word!r}; known: {', '.join(models.wake.words)}", file=sys.stderr)
        return 2
    lang = normalize_language(settings.language if language is None else language)
    result = transcribe_audio(
        audio, models, TurnConfig.from_settings(settings), lang, word, out=None if as_json else sys.stdout
    )
    if as_json:
        print(
            json.dumps(
                {
                    "file": str(path),
                    "text": result.text,
                    "wake": result.wakes,
                    "utterances": result.utterances,
                    "timings": {
                        "model_load_s": round(load_s, 3),
                        "audio_s": round(result.audio_s, 3),
                        "processing_s": round(result.elapsed_s, 3),
                        "stt_s": round(result.stt_s, 3),
                        "real_time_factor": round(result.elapsed_s / max(result.audio_s, 1e-6), 4),
                        "vad_ms_per_chunk": round(result.vad_ms_per_chunk, 3),
                        "wake_ms_per_frame": round(result.wake_ms_per_frame, 3),
                    },
                },
                indent=2,
            )
        )
    return 0
