"""The ``wyoming`` package's client against the running adapter: describe, transcribe, synthesize, wake word."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest
from protocol_fleet import ProtocolFleet
from speech import say, silence, write_wav
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, wav_to_chunks
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice
from wyoming.wake import Detect, Detection, NotDetected

from vad_stt_worker.hallucinations import normalize_text

pytestmark = [pytest.mark.fleet, pytest.mark.models]

#: Audio goes in 100 ms chunks, as a satellite sends it.
CHUNK_SAMPLES = 1600


async def ask(uri: str, *events: Event, until: tuple[str, ...], within: float = 60) -> list[Event]:
    """Send ``events`` on a fresh connection; the events received up to one of type ``until``."""
    received: list[Event] = []
    async with AsyncTcpClient.from_uri(uri) as client, asyncio.timeout(within):  # type: ignore[attr-defined]
        for event in events:
            await client.write_event(event)
        while True:
            event = await client.read_event()
            assert event is not None, f"connection closed after {[e.type for e in received]}"
            received.append(event)
            if event.type in until:
                return received


def wav_events(path: Path) -> list[Event]:
    with wave.open(str(path), "rb") as wav:
        return [e.event() for e in wav_to_chunks(wav, CHUNK_SAMPLES, start_event=True, stop_event=True)]


async def test_describe_lists_what_the_workers_run(protocol_fleet: ProtocolFleet) -> None:
    asr = Info.from_event((await ask(protocol_fleet.uri(protocol_fleet.asr_port), Describe().event(),
                                     until=("info",)))[-1])
    assert [p.name for p in asr.asr] == ["voicefleet-stt"] and not asr.tts and not asr.wake
    models = {m.name: m for m in asr.asr[0].models}
    assert {"whisper-tiny.en", "whisper-base"} <= set(models) and models["whisper-tiny.en"].languages == ["en"]
    assert "fr" in models["whisper-base"].languages

    tts = Info.from_event((await ask(protocol_fleet.uri(protocol_fleet.tts_port), Describe().event(),
                                     until=("info",)))[-1])
    voices = {v.name: v for v in tts.tts[0].voices}
    assert "en_US-joe-medium" in voices and voices["en_US-joe-medium"].languages == ["en_US"]
    assert voices["en_US-joe-medium"].attribution.name == "Piper"
    assert voices["en_US-hibari-heart"].attribution.name == "hibari"  # the English default voice

    wake = Info.from_event((await ask(protocol_fleet.uri(protocol_fleet.wake_port), Describe().event(),
                                      until=("info",)))[-1])
    assert {"hey_jarvis", "hey_mycroft", "alexa"} <= {m.name for m in wake.wake[0].models}


async def test_transcribe_a_wav(protocol_fleet: ProtocolFleet, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "q.wav", np.concatenate([silence(0.3, 22050), say("What time is it in Paris?", 22050),
                                                         silence(0.3, 22050)]), 22050)
    events = await ask(protocol_fleet.uri(protocol_fleet.asr_port), Transcribe(language="en").event(),
                       *wav_events(path), until=("transcript", "error"))
    transcript = Transcript.from_event(events[-1])
    assert normalize_text(transcript.text) == "what time is it in paris", events[-1]


async def test_synthesize_a_sentence(protocol_fleet: ProtocolFleet) -> None:
    events = await ask(protocol_fleet.uri(protocol_fleet.tts_port),
                       Synthesize(text="Dinner is ready.", voice=SynthesizeVoice(name="en_US-joe-medium")).event(),
                       until=("audio-stop", "error"))
    assert events[0].type == "audio-start" and events[-1].type == "audio-stop"
    start = AudioStart.from_event(events[0])
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    audio = np.frombuffer(b"".join(c.audio for c in chunks), dtype="<i2")
    assert (start.rate, start.width, start.channels) == (22050, 2, 1)
    assert 0.7 < audio.size / start.rate < 3.0 and np.abs(audio).max() > 3000


async def test_detect_hey_jarvis_in_a_recording(protocol_fleet: ProtocolFleet, tmp_path: Path) -> None:
    uri = protocol_fleet.uri(protocol_fleet.wake_port)
    heard = write_wav(tmp_path / "wake.wav", np.concatenate([silence(0.8), say("Hey Jarvis, what's the weather?"),
                                                             silence(1.0)]))
    events = await ask(uri, Detect(names=["hey_jarvis"]).event(), *wav_events(heard),
                       until=("detection", "not-detected", "error"))
    assert events[-1].type == "detection", events[-1]
    assert Detection.from_event(events[-1]).name == "hey_jarvis"

    other = write_wav(tmp_path / "other.wav", np.concatenate([silence(0.5), say("What's the weather like today?"),
                                                              silence(1.0)]))
    events = await ask(uri, Detect(names=["hey_jarvis"]).event(), *wav_events(other),
                       until=("detection", "not-detected", "error"))
    assert NotDetected.is_type(events[-1].type), events[-1]
