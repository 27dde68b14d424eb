"""Hostile clients against a real gateway process (real Redis, real WebSockets): every limit
answers with an ``error`` event and a clean close, never a 1011 or a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_gateway import Gateway, open_session, recv_json, recv_until, serve_gateway
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.fleet


@pytest.fixture
def gateway(fleet_env: dict[str, str], tmp_path: Path) -> Iterator[Gateway]:
    with serve_gateway(
        fleet_env, tmp_path,
        VF_GATEWAY_MAX_TEXT_MESSAGES_PER_S="10",
        VF_GATEWAY_MAX_TEXT_BYTES_PER_S="32768",
        VF_GATEWAY_MAX_AUDIO_SPEED="1.5",
        VF_GATEWAY_AUDIO_BURST_S="2",
        VF_GATEWAY_MAX_JSON_DEPTH="8",
    ) as gw:
        yield gw


async def closed_with(ws: ClientConnection, code: str, close_code: int) -> dict:
    """The error event ``code`` arrives, then the close ``close_code``; the error is returned."""
    error = await recv_until(ws, "error")
    assert error["code"] == code, error
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == close_code
    return error


async def still_open(ws: ClientConnection) -> None:
    await asyncio.wait_for(await ws.ping(), 5)


async def test_a_flood_of_control_messages_is_closed(gateway: Gateway) -> None:
    ws, _ = await open_session(gateway)
    async with ws:
        with contextlib.suppress(ConnectionClosed):  # the server may close while we still send
            for _ in range(200):
                await ws.send(json.dumps({"type": "interrupt"}))
        await closed_with(ws, "too_many_messages", 1008)


async def test_a_flood_of_message_bytes_is_closed(gateway: Gateway) -> None:
    ws, _ = await open_session(gateway)
    async with ws:
        padded = json.dumps({"type": "playback_finished"}) + " " * 10000  # few messages, many bytes
        with contextlib.suppress(ConnectionClosed):
            for _ in range(6):
                await ws.send(padded)
        await closed_with(ws, "too_much_text", 1008)


async def test_audio_is_limited_in_seconds_at_the_clients_own_rate(gateway: Gateway) -> None:
    # 8 kHz: 100 ms frames of 1600 bytes. A second of audio at once is inside the burst...
    ws, _ = await open_session(gateway, sample_rate=8000)
    async with ws:
        frame = np.zeros(800, dtype=np.int16).tobytes()
        for _ in range(10):
            await ws.send(frame)
        await still_open(ws)
        # ... six seconds in one go is not (30 frames: far under the frame-rate limit).
        with contextlib.suppress(ConnectionClosed):
            for _ in range(60):
                await ws.send(frame)
        error = await closed_with(ws, "audio_too_fast", 1008)
        assert "real time" in error["message"]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "configure", "wake_word": "w" * 5000},
        {"type": "configure", "voice": "v" * 5000},
        {"type": "text", "text": "hi", "turn_id": "t" * 5000},
        {"type": "text", "text": "hi", "ts": {"k" * 5000: 1.0}},
        {"type": "text", "text": "hi", "ts": {f"k{i}": 1.0 for i in range(100)}},
        {"type": "text", "text": "x" * 20000},
    ],
    ids=["wake_word", "voice", "turn_id", "ts_key", "ts_entries", "text"],
)
async def test_oversized_string_fields_are_refused(gateway: Gateway, message: dict) -> None:
    ws, _ = await open_session(gateway)
    async with ws:
        await ws.send(json.dumps(message))
        error = await recv_until(ws, "error")
        assert error["code"] in ("bad_message", "text_too_long")
        assert len(error["message"]) < 400  # the oversized value is not echoed back
        await still_open(ws)


async def test_oversized_start_fields_are_refused(gateway: Gateway) -> None:
    async with connect(gateway.ws + f"?token={gateway.token()}") as ws:
        await ws.send(json.dumps({"type": "start", "language": "l" * 5000}))
        await closed_with(ws, "bad_start", 1003)


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 5000 + "]" * 5000,
        '{"type": "text", "text": "deep", "ts": ' + '{"a": ' * 50 + "1" + "}" * 50 + "}",
        '{"type": "configure", "speech_rate": NaN}',
        '{"type": "configure", "speech_rate": Infinity}',
        '{"type": "configure", "speech_rate": 1e999}',
        '{"type": "text", "text": "lone \\ud800 surrogate"}',
        '{"type": "text", "text": "big", "seq": ' + "9" * 5000 + "}",
    ],
    ids=["deep_array", "deep_object", "nan", "infinity", "overflow", "lone_surrogate", "huge_int"],
)
async def test_hostile_json_gets_an_error_and_the_session_goes_on(gateway: Gateway, raw: str) -> None:
    ws, _ = await open_session(gateway)
    async with ws:
        await ws.send(raw)
        assert (await recv_until(ws, "error"))["code"] == "bad_message"
        await still_open(ws)
        await ws.send(json.dumps({"type": "interrupt"}))
        await still_open(ws)


async def test_hostile_json_in_start_is_a_clean_refusal(gateway: Gateway) -> None:
    for raw in ["[" * 5000 + "]" * 5000, '{"type": "start", "sample_rate": ' + "1" * 5000 + "}",
                '{"type": "start", "voice": "\\udfff"}', '{"type": "start", "speech_rate": NaN}']:
        async with connect(gateway.ws + f"?token={gateway.token()}") as ws:
            await ws.send(raw)
            await closed_with(ws, "bad_start", 1003)


async def test_close_reasons_are_cut_by_bytes() -> None:
    from gateway.connection import close_reason

    reason = close_reason("é" * 100)
    assert len(reason.encode()) <= 123 and reason == "é" * 61


async def test_a_multibyte_close_reason_gives_a_valid_close_frame(gateway: Gateway) -> None:
    async with connect(gateway.ws + f"?token={gateway.token()}") as ws:
        # Refused with a message that echoes 40 two-byte characters: over 123 bytes, under 120 characters.
        await ws.send(json.dumps({"type": "start", "resume_session_id": "gone", "resume_after": "é" * 40}))
        await closed_with(ws, "bad_resume_after", 1003)


async def test_simultaneous_handshakes_get_at_most_the_limit(gateway: Gateway) -> None:
    token = gateway.token("mallory")

    async def attempt() -> tuple[ClientConnection, str]:
        ws = await connect(gateway.ws + f"?token={token}")
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        try:
            return ws, (await recv_json(ws, 10))["type"]
        except ConnectionClosed:
            return ws, "closed"

    results = await asyncio.gather(*(attempt() for _ in range(12)))
    try:
        kinds = [kind for _, kind in results]
        assert kinds.count("ready") == 2, kinds  # the limit is 2 here
        assert kinds.count("error") == 10, kinds
    finally:
        await asyncio.gather(*(ws.close() for ws, _ in results))


async def test_sockets_held_without_start_take_a_slot(gateway: Gateway) -> None:
    token = gateway.token("mallory")
    idle = [await connect(gateway.ws + f"?token={token}") for _ in range(2)]
    try:
        await asyncio.sleep(0.5)  # both handshakes done (no start sent)
        async with connect(gateway.ws + f"?token={token}") as third:
            await third.send(json.dumps({"type": "start", "sample_rate": 16000}))
            await closed_with(third, "too_many_connections", 1013)
    finally:
        for ws in idle:
            await ws.close()
    # Slots are given back on close: a new connection gets one.
    ws, _ = await open_session(gateway)
    await ws.close()
