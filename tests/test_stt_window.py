"""The optional short Whisper encoder window (VF_STT_ENCODER_WINDOW_S), on the real models and real speech."""

from __future__ import annotations

import numpy as np
import pytest
from speech import noise, say, silence

from vad_stt_worker.hallucinations import normalize_text
from vad_stt_worker.models import hallucination_filter
from vad_stt_worker.settings import SttSettings
from vad_stt_worker.stt import ShortWindow, WhisperEngine, resolve_english_model, resolve_model

pytestmark = pytest.mark.models


def tiny_en_folder() -> str:
    model = resolve_english_model("tiny.en")
    assert model is not None
    return model


@pytest.fixture(scope="module")
def tiny_en() -> WhisperEngine:
    return WhisperEngine(tiny_en_folder(), encoder_window_s=10.0)


@pytest.fixture(scope="module")
def tiny_en_30s() -> WhisperEngine:
    return WhisperEngine(tiny_en_folder())


def words(text: str) -> list[str]:
    return normalize_text(text).split()


def test_window_follows_the_speech_above_a_floor() -> None:
    window = ShortWindow(model=None, floor_s=10.0)
    assert window.frames(200) == 1000  # a short command: the floor
    assert window.frames(1500) == 1600  # speech plus one second
    assert window.frames(2950) == 3000  # never past Whisper's 30 s
    assert window.max_tokens(300) >= 3 * 6  # three seconds of fast speech fit, twice over


@pytest.mark.parametrize(
    "sentence",
    ["Turn off the radio in the kitchen.", "Remind me to water the plants in the garden tomorrow morning."],
)
def test_short_window_transcript_of_speech_matches_the_sentence(
    tiny_en: WhisperEngine, tiny_en_30s: WhisperEngine, sentence: str
) -> None:
    audio = np.concatenate([silence(0.3), say(sentence), silence(0.2)]).astype(np.float32) / 32768
    assert tiny_en.window is not None
    short = tiny_en.window.transcribe(audio, "en")
    assert short is not None, "the short window fell back to 30 s on clear speech"
    segments, language = short
    assert language == "en" and len(segments) == 1
    heard, expected = words(segments[0].text), words(sentence)
    wrong = sum(a != b for a, b in zip(heard, expected, strict=False)) + abs(len(heard) - len(expected))
    assert wrong <= 1, segments[0].text
    # The confidence figures the hallucination filter judges stay those of a clear sentence.
    assert segments[0].no_speech_prob < 0.3 and segments[0].avg_logprob > -0.5, segments[0]
    assert tiny_en.transcribe(audio, "en").text == segments[0].text.strip()  # the engine takes this path
    assert tiny_en_30s.window is None
    full = tiny_en_30s.transcribe(audio, "en")
    assert words(full.text) == heard, (full.text, segments[0].text)


def test_short_window_keeps_noise_out(tiny_en: WhisperEngine) -> None:
    filter_ = hallucination_filter(SttSettings())
    for audio in (silence(2.0), noise(2.0, level=0.05)):
        transcript = tiny_en.transcribe(audio.astype(np.float32) / 32768, "en")
        assert filter_.clean(transcript, voiced_ms=2000) == "", transcript


def test_language_detection_and_long_audio_take_the_30_s_window() -> None:
    base = WhisperEngine(resolve_model(""), encoder_window_s=10.0)
    assert base.window is not None
    speech = np.concatenate([silence(0.3), say("Turn off the radio in the kitchen.")]).astype(np.float32) / 32768
    assert base.window.transcribe(speech, None) is None  # detection sees the full window
    assert base.window.transcribe(np.zeros(16000 * 30, np.float32), "en") is None  # does not fit
    detected = base.transcribe(speech, None)
    assert detected.language == "en" and words(detected.text) == words("turn off the radio in the kitchen")
