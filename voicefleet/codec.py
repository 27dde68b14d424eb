"""The one codec: message <-> Redis stream fields, and JSON text frames.

On the bus a message is two fields: ``h``, its JSON header, and ``a``, the raw
audio bytes for messages that carry audio (never base64). On the WebSocket a
message is a JSON text frame; audio goes as separate binary frames.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .messages import PROTOCOL_VERSION, REGISTRY, Message

HEADER = b"h"
AUDIO = b"a"

#: Nesting allowed in a client's JSON by default (a message needs 2; ``ts`` is the deepest field).
MAX_JSON_DEPTH = 16
#: Longest integer literal accepted from a client (int64 has 19 digits).
MAX_INT_DIGITS = 20
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class DecodeError(ValueError):
    """A message could not be decoded; ``session_id`` is kept when it was readable."""

    def __init__(self, reason: str, session_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.session_id = session_id


def encode(msg: Message) -> dict[bytes, bytes]:
    """Stream fields for ``msg``."""
    fields = {HEADER: msg.model_dump_json(exclude=msg.unsent_fields()).encode()}
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
            f"{'.'.join(str(p)[:40] for p in err['loc']) or 'message'}: {err['msg']}"
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


def json_depth(raw: str) -> int:
    """How deeply ``raw`` nests arrays and objects, found without parsing it (no recursion)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", raw)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise DecodeError(f"{name} is not a number this protocol accepts")


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise DecodeError(f"an integer of {len(literal)} digits is too large")
    return int(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise DecodeError(f"{literal[:20]} is out of range for a number")
    return value


def parse_untrusted(raw: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from a client: bounded depth and integers, no NaN or Infinity, no lone surrogates.

    Everything refused raises :class:`DecodeError` (never RecursionError,
    ValueError or a later UnicodeEncodeError on the way to Redis).
    """
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not valid JSON (not UTF-8: {exc.reason})") from None
    if json_depth(text) > max_depth:
        raise DecodeError(f"JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int,
                           parse_float=_finite_float)
        # Escaped lone surrogates ("\\ud800") parse into str that cannot be encoded: refuse them now.
        json.dumps(value, ensure_ascii=False).encode()
    except DecodeError:
        raise
    except json.JSONDecodeError as exc:
        raise DecodeError(f"not valid JSON ({exc})") from None
    except UnicodeEncodeError:
        raise DecodeError("a string holds a lone UTF-16 surrogate") from None
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not acceptable JSON ({type(exc).__name__})") from None
    return value


def decode_text(
    raw: str | bytes, allowed: tuple[type[Message], ...] | None = None, max_depth: int = MAX_JSON_DEPTH
) -> Message:
    """Decode a JSON text frame (parsed as untrusted), optionally only into one of ``allowed`` classes."""
    msg = from_header(parse_untrusted(raw, max_depth))
    if allowed is not None and not isinstance(msg, allowed):
        raise DecodeError(f"message type {msg.type!r} cannot be sent here", msg.session_id)
    return msg


def encode_text(msg: Message, trace: bool = True) -> str:
    """A JSON text frame (WebSocket, pub/sub); ``trace=False`` leaves the trace context out (for clients)."""
    return msg.model_dump_json(exclude=msg.unsent_fields(trace))
