"""The real ``openai`` SDK against the running fleet's OpenAI-compatible API.

Transcriptions of a recorded WAV in every response format and streamed,
speech saved in every format and decoded back (by FFmpeg, and one of them by
the fleet's own transcription), the models the live workers run, and a
refused key. Chat completions are tested with the command fleet, which runs
the orchestrator and the tools (``test_commands_fleet.py``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest
from protocol_fleet import ProtocolFleet
from speech import say, silence, write_wav

from vad_stt_worker.hallucinations import normalize_text

pytestmark = [pytest.mark.fleet, pytest.mark.models]

SENTENCE = "Please turn on the kitchen lights."


@pytest.fixture(scope="module")
def client(protocol_fleet: ProtocolFleet) -> openai.OpenAI:
    return openai.OpenAI(base_url=protocol_fleet.base_url, api_key=protocol_fleet.token("ada"), max_retries=0,
                         timeout=120)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WAV file of a person saying :data:`SENTENCE` (Piper's voice at 22.05 kHz, as a recorder would keep it)."""
    audio = np.concatenate([silence(0.4, 22050), say(SENTENCE, 22050), silence(0.4, 22050)])
    return write_wav(tmp_path_factory.mktemp("recordings") / "lights.wav", audio, 22050)


def words(text: str) -> list[str]:
    return normalize_text(text).split()


def test_transcribe_a_recording_in_each_response_format(client: openai.OpenAI, recording: Path) -> None:
    expected = words(SENTENCE)
    with recording.open("rb") as f:
        plain = client.audio.transcriptions.create(file=f, model="whisper-1", language="en")
    assert words(plain.text) == expected

    with recording.open("rb") as f:
        text = client.audio.transcriptions.create(file=f, model="whisper-1", response_format="text",
                                                  prompt="Turn on the kitchen lights, please.")
    assert isinstance(text, str) and words(text) == expected

    with recording.open("rb") as f:
        detailed = client.audio.transcriptions.create(
            file=f, model="whisper-1", response_format="verbose_json", timestamp_granularities=["word", "segment"]
        )
    assert words(detailed.text) == expected and detailed.language == "en"
    assert 2.0 < detailed.duration < 4.0
    assert detailed.segments and detailed.segments[0].start < 0.8 and detailed.segments[-1].end <= detailed.duration
    assert [normalize_text(w.word) for w in detailed.words or []] == expected
    times = [t for w in detailed.words or [] for t in (w.start, w.end)]
    assert times == sorted(times) and detailed.duration - 1.0 < times[-1] <= detailed.duration

    with recording.open("rb") as f:
        subtitles = client.audio.transcriptions.create(file=f, model="whisper-1", response_format="srt")
    lines = subtitles.strip().splitlines()
    assert lines[0] == "1" and " --> " in lines[1] and lines[1].startswith("00:00:0") and words(lines[2]) == expected

    with recording.open("rb") as f:
        web = client.audio.transcriptions.create(file=f, model="whisper-1", response_format="vtt")
    assert web.startswith("WEBVTT") and "00:00:0" in web and words(web.strip().splitlines()[-1]) == expected


def test_streamed_transcription(client: openai.OpenAI, recording: Path) -> None:
    with recording.open("rb") as f:
        events = list(client.audio.transcriptions.create(file=f, model="whisper-1", stream=True))
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and kinds[:-1] and set(kinds[:-1]) == {"transcript.text.delta"}
    assert "".join(e.delta for e in events[:-1]) == events[-1].text  # type: ignore[union-attr]
    assert words(events[-1].text) == words(SENTENCE)  # type: ignore[union-attr]


def decoded(path: Path, fmt: str) -> tuple[np.ndarray, int]:
    """The audio of a saved file, decoded by FFmpeg (raw PCM is read as documented: 24 kHz PCM16LE mono)."""
    if fmt == "pcm":
        return np.frombuffer(path.read_bytes(), dtype="<i2"), 24000
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(stream)])
    return samples, rate


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_speech_saved_in_each_format_decodes(client: openai.OpenAI, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"speech.{fmt}"
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="The kitchen lights are on.", response_format=fmt  # type: ignore[arg-type]
    ) as response:
        assert response.status_code == 200
        response.stream_to_file(path)
    audio, rate = decoded(path, fmt)
    seconds = audio.size / rate
    assert 1.0 < seconds < 4.0, (fmt, seconds)
    assert np.abs(audio.astype(np.float32)).max() > (0.1 if audio.dtype.kind == "f" else 3000)  # speech, not silence


def test_speech_says_what_it_was_given(client: openai.OpenAI, tmp_path: Path) -> None:
    """The WAV the speech endpoint made, transcribed back through the fleet."""
    path = tmp_path / "said.wav"
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="en_US-joe-medium", input=SENTENCE, response_format="wav", speed=1.0
    ) as response:
        response.stream_to_file(path)
    with path.open("rb") as f:
        heard = client.audio.transcriptions.create(file=f, model="whisper-1", language="en")
    assert words(heard.text) == words(SENTENCE)


def test_models_are_what_the_live_workers_run(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"whisper-tiny.en", "whisper-base", "piper:en_US-joe-medium", "hibari:en_US-hibari-heart"} <= ids
    assert "voicefleet" not in ids  # no orchestrator runs in this fleet: no assistant is offered


def test_wrong_key_raises_authentication_error(protocol_fleet: ProtocolFleet) -> None:
    wrong = openai.OpenAI(base_url=protocol_fleet.base_url, api_key="not-a-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        wrong.models.list()
    assert refused.value.code == "invalid_api_key"
    # Errors have OpenAI's shape, validation errors included.
    answer = httpx.post(f"{protocol_fleet.base_url}/audio/speech", json={"input": "hi", "speed": 9},
                        headers={"Authorization": f"Bearer {protocol_fleet.token()}"})
    assert answer.status_code == 400
    error = json.loads(answer.text)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == "speed"


def test_upload_that_is_not_audio_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(file=("notes.wav", io.BytesIO(b"not audio at all")), model="whisper-1")
    assert refused.value.code == "invalid_file"
