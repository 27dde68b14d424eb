"""hibari's packaged voice in the TTS worker: real model, real Redis, heard back by Whisper."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from test_tts_worker import check_turn_complete, say_and_collect, speak, transcribe, whisper  # noqa: F401 - whisper is a fixture
from tts_support import all_sentences_done, audio_of, chunks_of, read_until, running_worker

from bench.stt_bench import edit_distance
from bench.tts_bench import spoken_words
from tts_worker import hibari_engine
from tts_worker.settings import TtsSettings
from tts_worker.voices import VoiceCatalog
from tts_worker.worker import load_voices
from voicefleet.bus import Bus
from voicefleet.messages import Notice, new_id
from voicefleet.models import piper_voice
from voicefleet.sessions import SessionRecord, Sessions
from voicefleet.settings import BusSettings

pytestmark = pytest.mark.models

HIBARI = "en_US-hibari-heart"
JOE = "en_US-joe-medium"

# Replies as the LLM writes them: numbers, times, money, names, a question, markdown, a long sentence.
SENTENCES = [
    "Your train to Manchester leaves at 7:45 am from platform 12.",
    "The total comes to $1,249.99, including tax.",
    "Would you like me to add that to your shopping list?",
    "**Tip:** keep the lid on while the rice simmers.",
    "In 1969, Neil Armstrong became the first person to walk on the Moon, and millions of people "
    "watched him on television.",
]


@functools.lru_cache(maxsize=1)
def hibari_catalog() -> VoiceCatalog:
    """hibari as the default voice, Piper's packaged voice beside it."""
    return load_voices(TtsSettings(default_voice="hibari"))


async def test_hibari_speaks_replies_that_whisper_understands(
    bus: Bus,
    bus_settings: BusSettings,
    whisper,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    errors = total = 0
    async with running_worker(bus_settings, voices=hibari_catalog(), chunk_ms=100):
        for i, text in enumerate(SENTENCES):
            messages = await say_and_collect(bus, speak(text, f"hib{i}", seq=0, final=True, sample_rate=16000))
            chunks = chunks_of(messages)
            assert {c.sample_rate for c in chunks} == {16000}
            assert all(len(c.audio) <= 2 * 1600 for c in chunks)  # 100 ms pieces at 16 kHz
            audio = audio_of(chunks)
            assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 500  # real speech, not silence
            heard, expected = spoken_words(transcribe(whisper, audio, 16000)), spoken_words(text)
            wrong = edit_distance(expected, heard)
            # Each sentence is nearly all there (a name or a number word may be heard differently)...
            assert wrong <= 0.2 * len(expected), (text, " ".join(heard))
            errors, total = errors + wrong, total + len(expected)
    # ...and over the whole set almost every word is.
    assert errors <= 0.1 * total, (errors, total)


async def test_hibari_audio_comes_out_at_the_asked_rate_from_its_24_khz(bus: Bus, bus_settings: BusSettings) -> None:
    text = "The weather is sunny and warm today, so take a walk in the park."
    durations = {}
    async with running_worker(bus_settings, voices=hibari_catalog()):
        for rate in (16000, 22050, 24000, 48000):
            messages = await say_and_collect(bus, speak(text, f"hibrate{rate}", sample_rate=rate, final=True))
            chunks = chunks_of(messages)
            assert {c.sample_rate for c in chunks} == {rate}
            durations[rate] = len(audio_of(chunks)) / rate
    # hibari's noise branch varies a sentence slightly; a wrong rate would be off by a third or more.
    for rate in (22050, 24000, 48000):
        assert durations[rate] == pytest.approx(durations[16000], rel=0.05), durations
    assert 2.0 < durations[16000] < 7.0


async def test_hibari_follows_the_speaking_rate(bus: Bus, bus_settings: BusSettings) -> None:
    text = "The weather is sunny and warm today, so take a walk in the park."
    lengths = {}
    async with running_worker(bus_settings, voices=hibari_catalog()):
        for rate in (1.0, 1.5, 0.75):
            messages = await say_and_collect(bus, speak(text, f"hibpace{rate}", speech_rate=rate, final=True))
            lengths[rate] = len(audio_of(chunks_of(messages)))
    assert lengths[1.5] < 0.8 * lengths[1.0] < 0.8 * lengths[0.75]


async def test_both_engines_are_offered_and_chosen_by_name(bus: Bus, bus_settings: BusSettings) -> None:
    async with running_worker(bus_settings, voices=hibari_catalog()):
        (status,) = (await bus.health())["tts"]
        by_default = await say_and_collect(bus, speak("Hello there.", "hib-default", final=True, sample_rate=16000))
        joe = await say_and_collect(bus, speak("Hello there.", "hib-joe", voice="joe", final=True, sample_rate=16000))
        emma = await say_and_collect(bus, speak("Hello.", "hib-emma", voice="emma", final=True, sample_rate=16000))
    assert status["default_voice"] == HIBARI and status["voices"] == [HIBARI, JOE]
    assert status["voice_info"][0] == {
        "name": HIBARI, "language": "en_US", "sample_rate": 24000, "quality": "hibari", "engine": "hibari",
    }  # fmt: skip
    assert status["voice_info"][1]["engine"] == "piper"
    assert not [m for m in by_default + joe if isinstance(m, Notice)]
    assert len(audio_of(chunks_of(by_default))) > 0 and len(audio_of(chunks_of(joe))) > 0
    # A hibari voice that is not in the package is unavailable: the default speaks, with a notice.
    notices = [m for m in emma if isinstance(m, Notice)]
    assert notices and notices[0].code == "voice_unavailable"


async def test_sentences_synthesized_in_parallel_by_hibari_all_complete(bus: Bus, bus_settings: BusSettings) -> None:
    # Two syntheses at once share hibari's ONNX sessions and phonemizer.
    sentences = ["Here is the plan for Saturday.", "First, we pack at 8 am.", "Then, we drive north for 120 km.", ""]
    turn = new_id()
    async with running_worker(bus_settings, voices=hibari_catalog(), concurrency=2):
        for seq, text in enumerate(sentences):
            request = speak(text, "hib-par", turn=turn, seq=seq, final=seq == len(sentences) - 1, sample_rate=16000)
            await bus.enqueue(bus.keys.speak, request)
        messages = await read_until(bus, "hib-par", all_sentences_done(len(sentences)))
    chunks = chunks_of(messages)
    check_turn_complete(chunks, len(sentences))
    assert all(len(audio_of([c for c in chunks if c.seq == seq])) > 8000 for seq in range(3))


def test_hibari_voices_outside_the_package_are_refused_without_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIBARI_HOME", str(tmp_path / "cache"))  # where hibari would download to
    for name in ("emma", "hibari-fenrir", "bf_emma", "kore"):
        with pytest.raises(hibari_engine.HibariUnavailable, match="downloads its other voices"):
            load_voices(TtsSettings(default_voice=name))
    assert not (tmp_path / "cache").exists()
    for name in ("hibari", "heart", "af_heart", "EN_US-HIBARI-HEART"):
        assert hibari_engine.names_it(name)


async def test_a_session_in_another_language_gets_a_voice_of_its_language(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A "French" Piper voice: the packaged model under a French config (the language is what is routed on).
    packaged = piper_voice()
    (tmp_path / "fr_FR-copy-medium.onnx").symlink_to(packaged)
    config = json.loads(await asyncio.to_thread(Path(f"{packaged}.json").read_text))
    config["language"] = {"code": "fr_FR"}
    config.setdefault("espeak", {})["voice"] = "fr"
    (tmp_path / "fr_FR-copy-medium.onnx.json").write_text(json.dumps(config))
    voices = await asyncio.to_thread(load_voices, TtsSettings(default_voice="hibari", voices_dir=tmp_path))
    assert voices.names == [HIBARI, JOE, "fr_FR-copy-medium"]
    sessions = Sessions(bus)
    await sessions.save("hib-fr", SessionRecord(user="ada", language="fr"))
    await sessions.save("hib-en", SessionRecord(user="ada", language="en"))
    caplog.set_level(logging.INFO, logger="tts_worker.worker")
    async with running_worker(bus_settings, voices=voices):
        french = chunks_of(await say_and_collect(bus, speak("Bonjour.", "hib-fr", final=True)))
        english = chunks_of(await say_and_collect(bus, speak("Hello.", "hib-en", final=True)))
        named = chunks_of(await say_and_collect(bus, speak("Hello.", "hib-fr", voice="hibari", final=True)))
    assert french and english and named
    spoken = [r.getMessage() for r in caplog.records if r.getMessage().startswith("spoke sentence")]
    assert [m.split(" with ")[-1] for m in spoken] == ["fr_FR-copy-medium", HIBARI, HIBARI], spoken
    assert voices.for_language("fr") == "fr_FR-copy-medium"
    assert voices.for_language("en") == HIBARI and voices.for_language("auto") == HIBARI
    assert voices.for_language("de") == HIBARI  # no German voice: the default
