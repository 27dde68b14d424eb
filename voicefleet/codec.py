"""The one codec: message <-> Redis stream fields, and JSON text frames.

On the bus a message is two fields: ``h``, its JSON header, and ``a``, the raw
audio bytes for messages that carry audio (never base64). On the WebSocket a
message is a JSON text frame; audio goes as separate binary frames.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .messages import PROTOCOL_VERSION, REGISTRY, Message

HEADER = b"h"
AUDIO = b"a"


class DecodeError(ValueError):
    """A message could not be decoded; ``session_id`` is kept when it was readable."""

    def __init__(self, reason: str, session_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.session_id = session_id


def encode(msg: Message) -> dict[bytes, bytes]:
    """Stream fields for ``msg``."""
    fields = {HEADER: msg.model_dump_json(exclude={"audio"}).encode()}
    if msg.has_audio:
        fields[AUDIO] = audio_of(msg)
    return fields


def audio_of(msg: Message) -> bytes:
    """The raw audio a message carries (empty for messages without audio)."""
    audio = getattr(msg, "audio", b"")
    return audio if isinstance(audio, bytes) else b""


def from_header(header: Mapping[str, Any], audio: bytes | None = None) -> Message:
    """Validate a parsed header against the closed registry."""
    if not isinstance(header, Mapping):
        raise DecodeError("a message must be a JSON object")
    session_id = str(header.get("session_id", "") or "")
    kind = header.get("type")
    cls = REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise DecodeError(f"unknown message type {kind!r}", session_id)
    version = header.get("version", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise DecodeError(
            f"protocol version {version!r} is not supported (this server speaks {PROTOCOL_VERSION})",
            session_id,
        )
    data = dict(header)
    if cls.has_audio:
        data["audio"] = audio or b""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}"
            for err in exc.errors()[:3]
        )
        raise DecodeError(f"invalid {kind!r} message ({problems})", session_id) from None


def decode(fields: Mapping[bytes, bytes]) -> Message:
    """The message held in stream fields."""
    raw = fields.get(HEADER)
    if raw is None:
        raise DecodeError("stream entry has no header field")
    return from_header(parse_json(raw), fields.get(AUDIO))


def parse_json(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"not valid JSON ({exc})") from None


def decode_text(raw: str | bytes, allowed: tuple[type[Message], ...] | None = None) -> Message:
    """Decode a JSON text frame, optionally only into one of ``allowed`` classes."""
    msg = from_header(parse_json(raw))
    if allowed is not None and not isinstance(msg, allowed):
        raise DecodeError(f"message type {msg.type!r} cannot be sent here", msg.session_id)
    return msg


def encode_text(msg: Message) -> str:
    """A JSON text frame for the WebSocket."""
    return msg.model_dump_json(exclude={"audio"})
