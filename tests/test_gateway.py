"""The gateway as a real process, over a real WebSocket, against the real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import numpy as np
import pytest
from conftest import free_port
from fleet import Proc, child_env, eventually, mint_token, wait_for_http
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voicefleet.bus import Bus
from voicefleet.messages import (
    AudioChunk,
    AudioFrame,
    PlaybackStarted,
    SessionEnded,
    TranscriptFinal,
    TurnRequest,
)
from voicefleet.sessions import Sessions

pytestmark = pytest.mark.fleet


class Gateway:
    def __init__(self, url: str, secret: str, env: dict[str, str], log: Path | None = None) -> None:
        self.http, self.secret, self.env, self.log = url, secret, env, log
        self.ws = url.replace("http://", "ws://") + "/v1/ws/audio"

    def token(self, sub: str = "alice", **overrides: object) -> str:
        return mint_token(self.secret, sub, **overrides)


@contextlib.contextmanager
def serve_gateway(fleet_env: dict[str, str], tmp_path: Path, **settings: str) -> Iterator[Gateway]:
    """A gateway process with the tests' small limits, and ``settings`` (VF_GATEWAY_* names) on top."""
    port = free_port()
    env = child_env(fleet_env)
    env.update({
        "VF_GATEWAY_MAX_FRAME_BYTES": "8000",
        "VF_GATEWAY_IDLE_TIMEOUT_S": "30",
        "VF_GATEWAY_MAX_CONNECTIONS_PER_USER": "2",
        "VF_GATEWAY_REQUIRED_SERVICES": "",
        "VF_GATEWAY_RESUME_GRACE_S": "1",
        **settings,
    })
    proc = Proc(["-m", "gateway", "serve", "--port", str(port)], env, tmp_path / "gateway.log")
    try:
        wait_for_http(proc, f"http://127.0.0.1:{port}/v1/health", timeout=30)
        yield Gateway(f"http://127.0.0.1:{port}", env["VF_GATEWAY_JWT_SECRET"], env, tmp_path / "gateway.log")
    finally:
        proc.stop()


@pytest.fixture
def gateway(fleet_env: dict[str, str], tmp_path: Path) -> Iterator[Gateway]:
    with serve_gateway(fleet_env, tmp_path) as gw:
        yield gw


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict:
    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(raw, str):
            return json.loads(raw)


async def recv_until(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            event = await recv_json(ws, timeout)
            if event["type"] == kind:
                return event


async def open_session(gw: Gateway, **start: object) -> tuple[ClientConnection, str]:
    ws = await connect(gw.ws, additional_headers={"Authorization": f"Bearer {gw.token()}"})
    await ws.send(json.dumps({"type": "start", "sample_rate": 16000, **start}))
    ready = await recv_until(ws, "ready")
    return ws, ready["session_id"]


@pytest.mark.parametrize(
    "case, reason",
    [
        ("missing", "missing token"),
        ("expired", "expired"),
        ("wrong_signature", "signature"),
        ("alg_none", "algorithm"),
        ("wrong_audience", "audience"),
        ("wrong_issuer", "issuer"),
        ("no_exp", "exp"),
    ],
)
async def test_refused_tokens_close_with_1008_and_a_reason(gateway: Gateway, case: str, reason: str) -> None:
    tokens = {
        "missing": None,
        "expired": gateway.token(exp=int(time.time()) - 3600),
        "wrong_signature": jwt.encode(
            {"sub": "alice", "exp": int(time.time()) + 60, "aud": "voicefleet", "iss": "voicefleet"},
            "not-the-secret-but-long-enough-for-hmac",
            algorithm="HS256",
        ),
        "alg_none": jwt.encode(
            {"sub": "alice", "exp": int(time.time()) + 60, "aud": "voicefleet", "iss": "voicefleet"},
            None,
            algorithm="none",
        ),
        "wrong_audience": gateway.token(aud="someone-else"),
        "wrong_issuer": gateway.token(iss="evil"),
        "no_exp": gateway.token(exp=None),
    }
    token = tokens[case]
    url = gateway.ws + (f"?token={token}" if token else "")
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1008
    assert reason in info.value.rcvd.reason


async def test_audio_goes_through_redis_and_events_come_back(gateway: Gateway, bus: Bus) -> None:
    ws, sid = await open_session(gateway)
    async with ws:
        info = await bus.redis.hgetall(bus.keys.session(sid))
        assert info[b"user"] == b"alice"
        frame = (np.arange(320, dtype=np.int16) * 10).tobytes()
        for _ in range(5):
            await ws.send(frame)
        frames: list[AudioFrame] = []
        async with asyncio.timeout(5):
            last = "0"
            while len(frames) < 5:
                for entry in await bus.read(bus.keys.audio(sid), last, block_ms=200):
                    last = entry.id
                    if isinstance(entry.message, AudioFrame):
                        frames.append(entry.message)
        assert [f.seq for f in frames] == [1, 2, 3, 4, 5]
        assert frames[0].audio == frame  # raw bytes, unchanged at 16 kHz
        await bus.emit(TranscriptFinal(session_id=sid, turn_id="t1", text="hello from the bus"))
        event = await recv_until(ws, "transcript_final")
        assert event["text"] == "hello from the bus"


async def test_other_sample_rates_are_resampled_to_16k(gateway: Gateway, bus: Bus) -> None:
    ws, sid = await open_session(gateway, sample_rate=48000)
    async with ws:
        one_second = np.zeros(48000, dtype=np.int16)
        for i in range(0, 48000, 2400):  # 50 ms frames, under the test's frame limit
            await ws.send(one_second[i : i + 2400].tobytes())
        total = 0
        async with asyncio.timeout(5):
            last = "0"
            while total < 15000:
                for entry in await bus.read(bus.keys.audio(sid), last, block_ms=200):
                    last = entry.id
                    if isinstance(entry.message, AudioFrame):
                        total += len(entry.message.audio) // 2
        assert 15000 <= total <= 16000


async def test_reply_audio_is_reordered_and_framed(gateway: Gateway, bus: Bus) -> None:
    ws, sid = await open_session(gateway)
    async with ws:
        pieces = {(seq, idx): bytes([seq * 10 + idx]) * 64 for seq in range(3) for idx in range(2)}
        order = [(1, 0), (0, 1), (2, 1), (0, 0), (1, 1), (2, 0)]  # as parallel TTS workers might finish
        for seq, idx in order:
            await bus.emit(
                AudioChunk(session_id=sid, turn_id="t1", seq=seq, index=idx, last=idx == 1,
                           final=seq == 2 and idx == 1, audio=pieces[(seq, idx)], sample_rate=16000)
            )
        start = await recv_until(ws, "audio_start")
        assert start["sample_rate"] == 16000 and "gateway_sent" in start["ts"]
        got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(6)]
        assert got == [pieces[(s, i)] for s in range(3) for i in range(2)]
        assert (await recv_json(ws))["type"] == "audio_end"


async def test_typed_text_becomes_a_turn_and_cancel_interrupts(gateway: Gateway, bus: Bus) -> None:
    ws, sid = await open_session(gateway)
    async with ws:
        await ws.send(json.dumps({"type": "text", "text": "what time is it"}))
        async with asyncio.timeout(5):
            turns: list[TurnRequest] = []
            while not turns:
                turns = [e.message for e in await bus.read(bus.keys.turns, "0", block_ms=200)
                         if isinstance(e.message, TurnRequest) and e.message.session_id == sid]
        turn = turns[0]
        assert turn.user == "alice" and turn.source == "text" and turn.text == "what time is it"
        await ws.send(json.dumps({"type": "interrupt"}))
        event = await recv_until(ws, "interrupted")
        assert event["turn_id"] == turn.turn_id
        assert await bus.is_cancelled(sid, turn.turn_id)


async def test_playback_state_reaches_the_audio_stream_in_order(gateway: Gateway, bus: Bus) -> None:
    ws, sid = await open_session(gateway)
    async with ws:
        await ws.send(np.zeros(320, dtype=np.int16).tobytes())
        await ws.send(json.dumps({"type": "playback_started"}))
        await ws.send(np.zeros(320, dtype=np.int16).tobytes())
        kinds: list[str] = []
        async with asyncio.timeout(5):
            while len(kinds) < 4:
                kinds = [e.message.type for e in await bus.read(bus.keys.audio(sid), "0", block_ms=200)]
        assert kinds == ["session_started", "audio_frame", "playback_started", "audio_frame"]
        entries = await bus.read(bus.keys.audio(sid), "0", block_ms=10)
        assert isinstance(entries[2].message, PlaybackStarted)


async def test_malformed_messages_get_an_error_and_the_session_goes_on(gateway: Gateway) -> None:
    ws, _ = await open_session(gateway)
    async with ws:
        await ws.send("{this is not json")
        assert (await recv_until(ws, "error"))["code"] == "bad_message"
        await ws.send(json.dumps({"type": "fly_to_the_moon"}))
        assert "unknown message type" in (await recv_until(ws, "error"))["message"]
        await ws.send(b"\x00\x01\x02")  # odd length: not PCM16
        assert (await recv_until(ws, "error"))["code"] == "bad_frame"
        await ws.send(json.dumps({"type": "text", "text": "still there?"}))
        await ws.send(np.zeros(160, dtype=np.int16).tobytes())
        await ws.ping()  # the connection is still open


async def test_oversized_frame_gets_an_error_and_a_clean_close(gateway: Gateway) -> None:
    ws, _ = await open_session(gateway)
    async with ws:
        await ws.send(b"\x00" * 20000)
        error = await recv_until(ws, "error")
        assert error["code"] == "frame_too_large" and "limit" in error["message"]
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd.code == 1009


async def test_wrong_sample_rate_is_refused_clearly(gateway: Gateway) -> None:
    ws = await connect(gateway.ws + f"?token={gateway.token()}")
    async with ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 1000}))
        error = await recv_until(ws, "error")
        assert error["code"] == "bad_sample_rate" and "1000 Hz" in error["message"]
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd.code == 1003


async def test_connections_per_user_are_limited(gateway: Gateway) -> None:
    first, _ = await open_session(gateway)
    second, _ = await open_session(gateway)
    async with first, second:
        third = await connect(gateway.ws + f"?token={gateway.token()}")
        async with third:
            error = await recv_until(third, "error")
            assert error["code"] == "too_many_connections"


async def test_health_metrics_schema_and_docs(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=5) as client:
        health = (await client.get("/v1/health")).json()
        assert health["redis"] is True and health["services"]["gateway"]["processes"] == 1
        metrics = (await client.get("/metrics")).text
        assert "vf_ws_connections" in metrics and "vf_stage_latency_seconds" in metrics
        schema = (await client.get("/v1/schema")).json()
        assert "start" in json.dumps(schema["client_to_server"])
        assert (await client.get("/docs")).status_code == 200
        assert "/v1/health" in (await client.get("/openapi.json")).json()["paths"]
        assert (await client.post("/v1/dev/token", json={"sub": "bob"})).status_code == 403
        refused = await client.post("/v1/tts", json={"text": "hello"})
        assert refused.status_code == 401 and "missing token" in refused.json()["detail"]


async def test_a_dropped_client_leaves_its_session_waiting_then_it_ends(gateway: Gateway, bus: Bus) -> None:
    sessions = Sessions(bus)
    ws, sid = await open_session(gateway)
    await ws.send(json.dumps({"type": "text", "text": "hello"}))
    await eventually(lambda: sessions.current_turn(sid), 5)
    turn = await sessions.current_turn(sid)
    ws.transport.abort()  # the network went away: no close frame, no stop

    async def detached() -> bool:
        record = await sessions.load(sid)
        return record is not None and not record.connection

    await eventually(detached, 5)
    # Waiting for its client: still open, the turn goes on, no longer a connection of the user.
    assert await sessions.is_open(sid) and not await bus.is_cancelled(sid, turn)
    assert await sessions.connected_count("alice") == 0

    async def closed() -> bool:
        return not await sessions.is_open(sid)

    await eventually(closed, 10)  # the grace period is 1 s here
    assert await bus.is_cancelled(sid, turn)
    ended = [e.message for e in await bus.read(bus.keys.audio(sid), "0", block_ms=10, count=100)]
    assert any(isinstance(m, SessionEnded) and m.reason == "client_gone" for m in ended)


async def test_a_client_that_stops_reading_is_let_go_and_its_session_waits(fleet_env: dict[str, str],
                                                                            tmp_path: Path, bus: Bus) -> None:
    # A frozen tab or a stuck process: the TCP connection stays up, but nothing is read any more,
    # so the gateway's sends would wait forever. After the send timeout the client counts as gone.
    with serve_gateway(fleet_env, tmp_path, VF_GATEWAY_SEND_TIMEOUT_S="2", VF_GATEWAY_RESUME_GRACE_S="60") as gw:
        sessions = Sessions(bus)
        # A raw socket that sends the upgrade and ``start``, then reads nothing more than the handshake.
        port = int(gw.http.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        writer.write((f"GET /v1/ws/audio HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {gw.token()}\r\n\r\n").encode())
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        writer.write(masked_text_frame(json.dumps({"type": "start", "sample_rate": 16000})))
        await writer.drain()

        async def session_id() -> str | None:
            return next(iter(await sessions.user_sessions("alice")), None)

        await eventually(session_id, 10)
        sid = await session_id()
        piece = bytes(32000)
        for seq in range(200):  # 6.4 MB of reply audio: more than the socket buffers hold (4 MB at most here)
            await bus.emit(AudioChunk(session_id=sid, turn_id="t1", seq=seq, index=0, last=True,
                                      final=seq == 199, audio=piece, sample_rate=16000))

        async def detached() -> bool:
            record = await sessions.load(sid)
            return record is not None and not record.connection

        await eventually(detached, 30)
        assert await sessions.is_open(sid)  # kept for a resume, not ended
        assert gw.log is not None and "took no data" in gw.log.read_text()
        writer.transport.abort()
        await asyncio.sleep(0.1)  # let the loop really close the socket before the gateway stops


def masked_text_frame(text: str) -> bytes:
    """One client-to-server WebSocket text frame (RFC 6455: clients mask, here with a zero key)."""
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data)]) + bytes(4) + data
