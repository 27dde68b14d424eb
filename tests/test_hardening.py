"""Hostile clients against a real gateway process (real Redis, real WebSockets): every limit
answers with an ``error`` event and a clean close, never a 1011 or a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fleet import eventually
from test_gateway import Gateway, open_session, recv_json, recv_until, serve_gateway
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from audio_client.headless import HeadlessClient
from audio_client.protocol import StartOptions
from voicefleet.bus import Bus
from voicefleet.messages import Interrupt, TranscriptFinal

pytestmark = pytest.mark.fleet

OPERATOR = "operator-token-for-the-tests-0123456789"


@pytest.fixture
def gateway(fleet_env: dict[str, str], tmp_path: Path) -> Iterator[Gateway]:
    with serve_gateway(
        fleet_env, tmp_path,
        VF_GATEWAY_MAX_TEXT_MESSAGES_PER_S="10",
        VF_GATEWAY_MAX_TEXT_BYTES_PER_S="32768",
        VF_GATEWAY_MAX_AUDIO_SPEED="1.5",
        VF_GATEWAY_AUDIO_BURST_S="2",
        VF_GATEWAY_MAX_JSON_DEPTH="8",
        VF_GATEWAY_MAX_BODY_BYTES="4096",
        VF_GATEWAY_OPERATOR_TOKEN=OPERATOR,
        VF_GATEWAY_JWT_MAX_LIFETIME_S="86400",
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


# ------------------------------------------------------------------ HTTP


async def raw_post(gw: Gateway, headers: str, body: bytes) -> bytes:
    """The start of the answer to a hand-written POST /v1/tts (the body is sent only in part, if at all)."""
    port = int(gw.http.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST /v1/tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"{headers}\r\n".encode() + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()


async def test_a_large_body_is_refused_before_authentication(gateway: Gateway) -> None:
    # 16 MB announced, none of it sent: the answer comes from the header alone.
    declared = await raw_post(gateway, "Content-Length: 16000000\r\n", b"")
    assert declared.startswith(b"HTTP/1.1 413")
    # Chunked (no length): refused once more than the limit has arrived.
    chunk = b"1000\r\n" + b"x" * 4096 + b"\r\n"
    chunked = await raw_post(gateway, "Transfer-Encoding: chunked\r\n", chunk * 2)
    assert chunked.startswith(b"HTTP/1.1 413")
    async with httpx.AsyncClient(base_url=gateway.http, timeout=10) as client:
        small = await client.post("/v1/tts", json={"text": "hello"})
        assert small.status_code == 401  # under the limit: authentication decides


async def test_no_token_reaches_the_log(gateway: Gateway) -> None:
    token = gateway.token()
    async with connect(gateway.ws + f"?token={token}") as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        await recv_until(ws, "ready")
    async with httpx.AsyncClient(base_url=gateway.http, timeout=5) as client:
        await client.get("/v1/voices", params={"token": token})
    assert gateway.log is not None
    text = gateway.log.read_text()
    assert "token=[redacted]" in text  # the access log line is there, without its token
    assert token not in text and token.split(".")[2] not in text


async def test_the_page_has_security_headers(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=5) as client:
        page = await client.get("/")
        health = await client.get("/v1/health")
    for response in (page, health):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


async def test_host_and_origin_allow_lists(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=5) as client:
        assert (await client.get("/v1/health", headers={"host": "evil.example"})).status_code == 400
        assert (await client.get("/v1/health", headers={"host": "localhost:8080"})).status_code == 200
    url = gateway.ws + f"?token={gateway.token()}"
    with pytest.raises(InvalidStatus) as info:
        await connect(url, origin="http://evil.example")  # type: ignore[arg-type]
    assert info.value.response.status_code == 403
    async with connect(url, origin="http://localhost:3000") as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        await recv_until(ws, "ready")


async def test_health_details_and_metrics_need_the_operator_token(gateway: Gateway) -> None:
    operator = {"authorization": f"Bearer {OPERATOR}"}
    async with httpx.AsyncClient(base_url=gateway.http, timeout=5) as client:
        public = (await client.get("/v1/health")).json()
        assert public["services"]["gateway"] == {"processes": 1, "ready": 1}
        assert "pid" not in json.dumps(public) and "host" not in json.dumps(public)
        detailed = (await client.get("/v1/health", headers=operator)).json()
        assert detailed["services"]["gateway"]["instances"][0]["pid"] > 0
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"authorization": f"Bearer {gateway.token()}"})).status_code == 401
        assert "vf_ws_connections" in (await client.get("/metrics", headers=operator)).text


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": " alice"}, "subject"),
        ({"sub": "alice "}, "subject"),
        ({"iat": int(time.time()), "exp": int(time.time()) + 10 * 365 * 86400}, "lifetime"),
        ({"exp": str(int(time.time()) + 600)}, "'exp' must be a number"),
    ],
    ids=["leading_space", "trailing_space", "ten_years", "string_exp"],
)
async def test_doubtful_tokens_are_refused(gateway: Gateway, claims: dict, reason: str) -> None:
    async with connect(gateway.ws + f"?token={gateway.token(**claims)}") as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert reason in info.value.rcvd.reason


# ------------------------------------------------------------------ Redis


async def test_a_live_sessions_streams_expire_unless_refreshed(gateway: Gateway, bus: Bus) -> None:
    ws, sid = await open_session(gateway)
    async with ws:
        await bus.emit(TranscriptFinal(session_id=sid, turn_id="t1", text="hello"))
        await recv_until(ws, "transcript_final")

        async def both_expire() -> bool:
            ttls = [await bus.redis.ttl(bus.keys.audio(sid)), await bus.redis.ttl(bus.keys.out(sid))]
            return all(t > 0 for t in ttls)

        await eventually(both_expire, 8)  # the keepalive runs every 2 s


async def test_a_racing_client_paces_itself_by_the_speed_the_gateway_announces(gateway: Gateway) -> None:
    # The headless client's fast mode (5x real time on its own) must stay under 1.5x here.
    async with HeadlessClient(gateway.ws.removesuffix("/v1/ws/audio"), gateway.token(),
                              StartOptions(wake_word="")) as client:
        assert client.ready.max_audio_speed == 1.5 and client.ready.audio_burst_s == 2
        result = await client.say(np.zeros(8 * 16000, np.int16), realtime=False, trailing_silence_s=0,
                                  timeout_s=8)
        assert "audio_too_fast" not in " ".join(result.errors)
        await client.session.send(Interrupt())  # still connected
