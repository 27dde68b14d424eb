"""The TTS worker with the real Piper voice on the real Redis, running in this event loop."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tts_support import all_sentences_done, audio_of, catalog, chunks_of, read_until, running_worker

from tts_worker.engine import SpeechEngine
from tts_worker.settings import TtsSettings
from tts_worker.voices import VoiceCatalog, VoiceInfo
from tts_worker.worker import load_voices
from voicefleet.audio import BUS_RATE
from voicefleet.bus import Bus
from voicefleet.messages import AudioChunk, Error, Message, Notice, SpeakRequest, new_id
from voicefleet.models import piper_voice, whisper_base_dir
from voicefleet.sessions import SessionRecord, Sessions
from voicefleet.settings import BusSettings

pytestmark = pytest.mark.models

SENTENCE = "The weather is sunny and warm today, so take a walk in the park."


@pytest.fixture(scope="module")
def whisper():  # type: ignore[no-untyped-def]
    from faster_whisper import WhisperModel

    return WhisperModel(str(whisper_base_dir()), device="cpu", compute_type="int8", cpu_threads=2)


def transcribe(model, audio: np.ndarray, rate: int) -> str:  # type: ignore[no-untyped-def]
    import soxr

    pcm = audio.astype(np.float32) / 32768.0
    if rate != 16000:
        pcm = soxr.resample(pcm, rate, 16000)
    segments, _ = model.transcribe(pcm, beam_size=1, language="en", vad_filter=False)
    return " ".join(s.text for s in segments)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def speak(text: str, session: str, turn: str = "t1", **fields: object) -> SpeakRequest:
    return SpeakRequest(session_id=session, turn_id=turn, text=text, **fields)  # type: ignore[arg-type]


async def say_and_collect(bus: Bus, request: SpeakRequest) -> list[Message]:
    await bus.enqueue(bus.keys.speak, request)
    return await read_until(bus, request.session_id, all_sentences_done(1))


async def test_a_sentence_is_spoken_in_short_pieces_and_heard_back(
    bus: Bus,
    bus_settings: BusSettings,
    whisper,  # type: ignore[no-untyped-def]
) -> None:
    async with running_worker(bus_settings, chunk_ms=100):
        request = speak(SENTENCE, "s1", seq=0, final=True, sample_rate=16000)
        request.stamp("first_chunk")
        messages = await say_and_collect(bus, request)
    chunks = chunks_of(messages)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].final and not any(c.final for c in chunks[:-1])
    assert all(len(c.audio) <= 2 * 1600 for c in chunks)  # 100 ms pieces, first bytes leave early
    assert {"first_chunk", "tts_start", "tts_first_audio"} <= set(chunks[0].ts)
    audio = audio_of(chunks)
    seconds = len(audio) / 16000
    assert 2.0 < seconds < 7.0, seconds  # about 15 characters a second
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 1000  # real speech, not silence
    heard = words(transcribe(whisper, audio, 16000))
    expected = words(SENTENCE)
    assert len(set(heard) & set(expected)) >= len(expected) - 1, heard


async def test_audio_comes_out_at_exactly_the_asked_rate(bus: Bus, bus_settings: BusSettings) -> None:
    durations = {}
    async with running_worker(bus_settings):
        for rate in (16000, 24000):
            messages = await say_and_collect(bus, speak(SENTENCE, f"rate{rate}", sample_rate=rate, final=True))
            chunks = chunks_of(messages)
            assert {c.sample_rate for c in chunks} == {rate}
            durations[rate] = len(audio_of(chunks)) / rate
    # Piper's duration noise varies a sentence by a few percent; a wrong rate would be off by a third.
    assert durations[24000] == pytest.approx(durations[16000], rel=0.08)
    assert 2.0 < durations[16000] < 7.0


async def test_with_no_rate_asked_the_audio_comes_at_the_sessions_output_rate(
    bus: Bus, bus_settings: BusSettings
) -> None:
    await Sessions(bus).save("s-rate", SessionRecord(user="ada", output_sample_rate=24000))
    async with running_worker(bus_settings):
        from_session = chunks_of(await say_and_collect(bus, speak("Hello there.", "s-rate", final=True)))
        unknown = chunks_of(await say_and_collect(bus, speak("Hello there.", "s-none", final=True)))
    assert {c.sample_rate for c in from_session} == {24000}
    assert {c.sample_rate for c in unknown} == {BUS_RATE}  # no record: the bus rate


async def test_speaking_rate_changes_the_pace(bus: Bus, bus_settings: BusSettings) -> None:
    lengths = {}
    async with running_worker(bus_settings):
        for rate in (1.0, 1.5, 0.75):
            session = f"pace{rate}"
            messages = await say_and_collect(bus, speak(SENTENCE, session, speech_rate=rate, final=True))
            lengths[rate] = len(audio_of(chunks_of(messages)))
    assert lengths[1.5] < 0.8 * lengths[1.0] < 0.8 * lengths[0.75]


async def test_an_empty_final_request_closes_the_turn_with_one_empty_chunk(bus: Bus, bus_settings: BusSettings) -> None:
    async with running_worker(bus_settings):
        messages = await say_and_collect(bus, speak("", "s-empty", seq=3, final=True))
        # Nothing speakable after normalization behaves the same way.
        markup = await say_and_collect(bus, speak("**  ** 😀", "s-markup", seq=0, final=False))
    assert [(c.seq, c.index, c.last, c.final, c.audio) for c in chunks_of(messages)] == [(3, 0, True, True, b"")]
    assert [(c.index, c.last, c.final, c.audio) for c in chunks_of(markup)] == [(0, True, False, b"")]


async def test_too_long_text_gets_a_clear_error_and_the_sentence_still_ends(
    bus: Bus, bus_settings: BusSettings
) -> None:
    async with running_worker(bus_settings, max_text_chars=100):
        messages = await say_and_collect(bus, speak("word " * 40, "s-long", seq=2, final=True))
    errors = [m for m in messages if isinstance(m, Error)]
    assert errors and errors[0].code == "text_too_long" and "at most 100" in errors[0].message
    assert errors[0].seq == 2
    assert [(c.seq, c.last, c.final, c.audio) for c in chunks_of(messages)] == [(2, True, True, b"")]


async def test_unknown_voice_falls_back_to_the_default_with_a_notice(bus: Bus, bus_settings: BusSettings) -> None:
    async with running_worker(bus_settings):
        messages = await say_and_collect(bus, speak("Hello there.", "s-voice", voice="nobody", final=True))
        by_part = await say_and_collect(bus, speak("Hello again.", "s-joe", voice="JOE", final=True))
    notices = [m for m in messages if isinstance(m, Notice)]
    assert notices and notices[0].code == "voice_unavailable" and "en_US-joe-medium" in notices[0].message
    assert len(audio_of(chunks_of(messages))) > 0
    assert not [m for m in by_part if isinstance(m, Notice)]  # "JOE" names en_US-joe-medium


async def test_health_advertises_the_voices(bus: Bus, bus_settings: BusSettings) -> None:
    async with running_worker(bus_settings):
        health = await bus.health()
    (status,) = health["tts"]
    assert status["ready"] and status["default_voice"] == "en_US-joe-medium"
    assert status["voices"] == ["en_US-joe-medium"]
    assert status["voice_info"][0] == {
        "name": "en_US-joe-medium", "language": "en_US", "sample_rate": 22050, "quality": "medium", "engine": "piper",
    }  # fmt: skip


async def test_a_cancel_stops_the_audio_of_that_turn(bus: Bus, bus_settings: BusSettings) -> None:
    long_text = " ".join(
        f"This is sentence number {n} of a long answer that nobody wants to hear to the end." for n in range(1, 9)
    )
    session = "s-cancel"
    async with running_worker(bus_settings, chunk_ms=100):
        await bus.enqueue(bus.keys.speak, speak(long_text, session, turn="old", final=True))
        before = await read_until(bus, session, lambda ms: len(chunks_of(ms)) >= 1)
        await bus.cancel(session, "old")
        cancelled_at = len(chunks_of(before))
        # A sentence of the cancelled turn still queued is dropped without a sound.
        await bus.enqueue(bus.keys.speak, speak("Still queued.", session, turn="old", seq=1, final=True))
        # The next turn is spoken normally, which also proves the worker is free again.
        await bus.enqueue(bus.keys.speak, speak("Okay.", session, turn="new", final=True))
        messages = await read_until(bus, session, lambda ms: any(c.turn_id == "new" and c.last for c in chunks_of(ms)))
    old = [c for c in chunks_of(messages) if c.turn_id == "old"]
    assert not any(c.last for c in old)  # never finished
    assert all(c.seq == 0 for c in old)
    after_cancel = len(old) - cancelled_at
    # Eight sentences are about 30 s of audio (300 pieces); at most the pieces of one
    # sentence in flight may slip out before the cancel is heard.
    assert after_cancel < 60, after_cancel
    assert len(audio_of(old)) < 0.3 * 30 * 22050


async def test_a_cancel_before_the_request_is_read_drops_it(bus: Bus, bus_settings: BusSettings) -> None:
    await bus.cancel("s-pre", "gone")
    async with running_worker(bus_settings):
        await bus.enqueue(bus.keys.speak, speak("Never said.", "s-pre", turn="gone", final=True))
        await bus.enqueue(bus.keys.speak, speak("Said.", "s-pre", turn="next", final=True))
        messages = await read_until(bus, "s-pre", all_sentences_done(1))
    assert {c.turn_id for c in chunks_of(messages)} == {"next"}


async def test_sentences_of_a_turn_synthesized_in_parallel_all_complete(bus: Bus, bus_settings: BusSettings) -> None:
    sentences = ["Here is the plan.", "First, we pack.", "Then, we drive north.", ""]
    turn = new_id()
    async with running_worker(bus_settings, concurrency=2):
        for seq, text in enumerate(sentences):
            await bus.enqueue(
                bus.keys.speak,
                speak(text, "s-par", turn=turn, seq=seq, final=seq == len(sentences) - 1, sample_rate=16000),
            )
        messages = await read_until(bus, "s-par", all_sentences_done(len(sentences)))
    check_turn_complete(chunks_of(messages), len(sentences))


def check_turn_complete(chunks: list[AudioChunk], count: int) -> None:
    """Every seq appears with contiguous indexes and exactly one last piece; final only at the end."""
    for seq in range(count):
        mine = sorted((c for c in chunks if c.seq == seq), key=lambda c: c.index)
        assert [c.index for c in mine] == list(range(len(mine))), seq
        assert [c.last for c in mine].count(True) == 1 and mine[-1].last, seq
    finals = [c for c in chunks if c.final]
    assert len(finals) == 1 and finals[0].seq == count - 1 and finals[0].last


async def test_a_malformed_rate_or_voice_does_not_break_the_worker(bus: Bus, bus_settings: BusSettings) -> None:
    async with running_worker(bus_settings):
        messages = await say_and_collect(
            bus, speak("Fine.", "s-odd", speech_rate=50.0, sample_rate=1_000_000, final=True)
        )
        await asyncio.sleep(0)
    chunks = chunks_of(messages)
    assert {c.sample_rate for c in chunks} == {48000} and chunks[-1].last


class BreaksAfterFirstSentence(SpeechEngine):
    """The real voice, failing after its first sentence: a fault injected to test the error path."""

    def __init__(self, real: SpeechEngine) -> None:
        self.real, self.name, self.sample_rate = real, "flaky", real.sample_rate

    def synthesize(self, text: str, speech_rate: float = 1.0) -> Iterator[np.ndarray]:
        yield next(iter(self.real.synthesize(text, speech_rate)))
        raise RuntimeError("onnxruntime fell over")


async def test_a_synthesis_error_is_reported_and_the_sentence_still_ends(bus: Bus, bus_settings: BusSettings) -> None:
    real = catalog().resolve(None)
    assert real is not None
    infos = [*catalog().infos, VoiceInfo("flaky", Path("flaky.onnx"), "en_US", real.sample_rate, "medium")]
    voices = VoiceCatalog(
        {"en_US-joe-medium": real, "flaky": BreaksAfterFirstSentence(real)}, infos, "en_US-joe-medium"
    )
    async with running_worker(bus_settings, voices=voices):
        text = "This first sentence is spoken. The second one never is."
        messages = await say_and_collect(bus, speak(text, "s-flaky", voice="flaky", seq=1, final=True))
    errors = [m for m in messages if isinstance(m, Error)]
    assert [(e.code, e.seq) for e in errors] == [("tts_failed", 1)]
    chunks = chunks_of(messages)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].last and chunks[-1].final and chunks[-1].audio == b""
    assert len(audio_of(chunks)) > 0.5 * 16000  # the first sentence did go out


async def test_voices_from_a_folder_are_offered_and_used(bus: Bus, bus_settings: BusSettings, tmp_path: Path) -> None:
    packaged = piper_voice()
    (tmp_path / "en_GB-copy-medium.onnx").symlink_to(packaged)
    shutil.copy(f"{packaged}.json", tmp_path / "en_GB-copy-medium.onnx.json")
    voices = await asyncio.to_thread(load_voices, TtsSettings(voices_dir=tmp_path, default_voice="", hibari=False))
    async with running_worker(bus_settings, voices=voices):
        (status,) = (await bus.health())["tts"]
        messages = await say_and_collect(bus, speak("Good morning.", "s-copy", voice="en_GB-copy-medium", final=True))
    assert status["voices"] == ["en_US-joe-medium", "en_GB-copy-medium"]
    assert not [m for m in messages if isinstance(m, Notice)]
    assert len(audio_of(chunks_of(messages))) > 0
