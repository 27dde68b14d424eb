"""Every message type survives the codec, on the bus and as a JSON text frame."""

from __future__ import annotations

import json

import pytest

from voicefleet import codec
from voicefleet.messages import REGISTRY, AudioChunk, AudioFrame, Message, TextInput, json_schemas

# A minimal valid payload for the required fields of each type.
REQUIRED = {
    "text": {"text": "hello there"},
    "turn_request": {"text": "what time is it"},
    "speak_request": {"text": "It is noon."},
    "tool_call": {"name": "notes.add", "args": {"text": "buy milk"}},
    "tts_request": {"text": "Hello."},
    "wake": {"word": "hey_jarvis", "score": 0.9},
    "transcript_partial": {"text": "what ti"},
    "transcript_final": {"text": "what time is it"},
    "reply_delta": {"text": "It is"},
    "notice": {"code": "fallback", "message": "Using the backup model."},
    "error": {"code": "bad_frame", "message": "That audio frame was too large."},
}


def sample(kind: str) -> Message:
    cls = REGISTRY[kind]
    msg = cls(session_id="s1", turn_id="t1", seq=7, **REQUIRED.get(kind, {}))
    msg.stamp("eot", 1700000000.25)
    if msg.has_audio:
        msg.audio = bytes(range(256)) * 4  # includes NUL and non-UTF-8 bytes
    return msg


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_round_trip_stream_fields(kind: str) -> None:
    msg = sample(kind)
    fields = codec.encode(msg)
    back = codec.decode(fields)
    assert type(back) is type(msg)
    assert back == msg
    if msg.has_audio:
        assert fields[codec.AUDIO] == msg.audio  # raw bytes, never base64
        assert "audio" not in json.loads(fields[codec.HEADER])


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_round_trip_json_text(kind: str) -> None:
    msg = sample(kind)
    back = codec.decode_text(codec.encode_text(msg))
    assert back.header() == msg.header()


def test_envelope_is_the_same_everywhere() -> None:
    for kind in REGISTRY:
        header = sample(kind).header()
        assert {"type", "version", "session_id", "turn_id", "seq", "ts"} <= set(header)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "launch_missiles"}', "unknown message type"),
        (b'{"type": "text"}', "text"),
        (b'{"type": "text", "text": "hi", "version": 99}', "version"),
        (b'{"type": "text", "text": "hi", "extra": 1}', "extra"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_input_is_a_decode_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(codec.DecodeError) as info:
        codec.decode_text(raw)
    assert fragment in str(info.value)


def test_only_allowed_types_decode_from_clients() -> None:
    frame = AudioChunk(session_id="s").model_dump_json()
    with pytest.raises(codec.DecodeError, match="cannot be sent here"):
        codec.decode_text(frame, (TextInput,))


def test_schemas_export_both_directions() -> None:
    schemas = json_schemas()
    text = json.dumps(schemas)
    assert "transcript_final" in text and "playback_started" in text
    assert "audio_frame" not in text  # internal bus messages are not protocol


def test_audio_frame_header_has_no_audio() -> None:
    frame = AudioFrame(session_id="s", audio=b"\x00\x01")
    assert "audio" not in frame.header()
