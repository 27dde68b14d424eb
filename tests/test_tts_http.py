"""``POST /v1/tts`` and ``GET /v1/voices`` against the real Redis and a real worker in this loop."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fleet import eventually
from tts_support import running_worker

from gateway.tts_routes import TtsHttpSettings, make_router
from tts_worker.worker import TtsService
from voicefleet.bus import Bus
from voicefleet.settings import BusSettings

pytestmark = pytest.mark.models


def require_key(request: Request) -> None:
    """Stands in for the gateway's JWT check: the router must accept such a dependency."""
    if request.headers.get("authorization") != "Bearer ok":
        raise HTTPException(401, "sign in first")


def user_header(request: Request) -> str:
    """Stands in for the JWT subject: the caller's user id, for per-user fairness."""
    return request.headers.get("x-user", "")


def client_for(bus: Bus, **limits: object) -> httpx.AsyncClient:
    app = FastAPI()
    app.state.bus = bus
    settings = TtsHttpSettings(**limits)  # type: ignore[arg-type]
    app.include_router(make_router(settings, dependencies=[Depends(require_key)], get_user=user_header))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers={"authorization": "Bearer ok"}
    )


@pytest.fixture
async def client(bus: Bus, bus_settings: BusSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_worker(bus_settings), client_for(bus, max_text_chars=300, max_concurrent=1) as c:
        yield c


def read_wav(data: bytes) -> tuple[int, np.ndarray]:
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


async def test_tts_returns_a_wav_of_the_spoken_text(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tts", json={"text": "Hello! It is 10:30 and the sun is out."})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    rate, audio = read_wav(response.content)
    assert rate == 22050
    assert 1.5 < len(audio) / rate < 6.0
    assert np.abs(audio).max() > 5000  # speech, not silence


async def test_tts_honours_rate_voice_and_speed(client: httpx.AsyncClient) -> None:
    text = "This is a test of the speaking rate."
    voice = "en_US-joe-medium"  # both at the same voice: hibari's rate is checked in test_tts_hibari
    normal = await client.post("/v1/tts", json={"text": text, "sample_rate": 16000, "voice": voice})
    fast = await client.post("/v1/tts", json={"text": text, "sample_rate": 16000, "rate": 1.6, "voice": voice})
    assert normal.status_code == fast.status_code == 200
    (rate_n, audio_n), (rate_f, audio_f) = read_wav(normal.content), read_wav(fast.content)
    assert rate_n == rate_f == 16000
    assert len(audio_f) < 0.8 * len(audio_n)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "   "}, 400, "empty_text"),
        ({"text": "a" * 301}, 413, "text_too_long"),
        ({"text": "Hi.", "voice": "nobody"}, 400, "unknown_voice"),
    ],
)
async def test_bad_requests_get_a_clear_error(
    client: httpx.AsyncClient, body: dict[str, str], status: int, code: str
) -> None:
    response = await client.post("/v1/tts", json=body)
    assert response.status_code == status
    detail = response.json()["detail"]
    assert detail["code"] == code and detail["message"].endswith(".")


async def test_out_of_range_options_are_refused_by_validation(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tts", json={"text": "Hi.", "rate": 0})
    assert response.status_code == 422
    response = await client.post("/v1/tts", json={"text": "Hi.", "sample_rate": 1000})
    assert response.status_code == 422


async def test_requests_over_the_concurrency_limit_get_429(client: httpx.AsyncClient) -> None:
    text = "A sentence long enough to keep the worker busy for a little while, at least."
    first, second = await asyncio.gather(
        client.post("/v1/tts", json={"text": text}), client.post("/v1/tts", json={"text": text})
    )
    assert sorted([first.status_code, second.status_code]) == [200, 429]
    refused = first if first.status_code == 429 else second
    assert refused.json()["detail"]["code"] == "too_many_requests" and refused.headers["retry-after"]


async def test_voices_are_listed_from_the_workers(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/voices")
    assert response.status_code == 200
    listing = response.json()
    assert listing["default"] == "en_US-joe-medium"
    assert [v["name"] for v in listing["voices"]] == ["en_US-joe-medium"]
    assert listing["voices"][0]["sample_rate"] == 22050


async def test_the_routes_obey_the_dependencies_given(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tts", json={"text": "Hi."}, headers={"authorization": "Bearer wrong"})
    assert response.status_code == 401


async def test_no_worker_means_503(bus: Bus) -> None:
    async with client_for(bus, timeout_s=1.0) as c:
        tts = await c.post("/v1/tts", json={"text": "Is anybody there?"})
        voices = await c.get("/v1/voices")
    assert tts.status_code == voices.status_code == 503
    assert tts.json()["detail"]["code"] == "tts_unavailable"


async def test_a_worker_that_never_answers_means_503(bus: Bus) -> None:
    # A health key that looks alive, but nothing reads the work stream.
    await bus.beat("tts", "ghost", {"ready": True, "voices": ["en_US-joe-medium"]})
    async with client_for(bus, timeout_s=0.5) as c:
        response = await c.post("/v1/tts", json={"text": "Hello?"})
    assert response.status_code == 503 and response.json()["detail"]["code"] == "tts_timeout"


async def test_the_text_limit_holds_after_numbers_are_spelled_out(bus: Bus, bus_settings: BusSettings) -> None:
    # 80 characters of digits read out as some 700: over a 300-character limit.
    async with running_worker(bus_settings, max_text_chars=300), client_for(bus, max_text_chars=300) as c:
        response = await c.post("/v1/tts", json={"text": "1234567 " * 10})
    assert response.status_code == 413, response.status_code
    assert response.json()["detail"]["code"] == "text_too_long"


async def test_one_user_cannot_take_every_slot(bus: Bus, bus_settings: BusSettings) -> None:
    text = "A sentence long enough to keep the worker busy for a little while, at least."
    async with running_worker(bus_settings), client_for(bus, max_concurrent=4, max_per_user=1) as c:
        mine, mine_again, theirs = await asyncio.gather(
            c.post("/v1/tts", json={"text": text}, headers={"x-user": "greedy"}),
            c.post("/v1/tts", json={"text": text}, headers={"x-user": "greedy"}),
            c.post("/v1/tts", json={"text": text}, headers={"x-user": "polite"}),
        )
    assert sorted([mine.status_code, mine_again.status_code]) == [200, 429]
    assert theirs.status_code == 200


async def test_a_timed_out_synthesis_is_cancelled_on_the_worker(bus: Bus, bus_settings: BusSettings) -> None:
    text = " ".join(f"This is sentence number {w} of a long text that nobody will wait for." for w in
                    ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"] * 2)
    async with running_worker(bus_settings, max_text_chars=4000) as worker, \
            client_for(bus, max_text_chars=4000, timeout_s=0.5) as c:
        response = await c.post("/v1/tts", json={"text": text})
        assert response.status_code == 503 and response.json()["detail"]["code"] == "tts_timeout"
        # Twenty sentences take many seconds to speak: the worker is free again long before that.
        await eventually(lambda: _idle(worker), 4)


async def _idle(worker: TtsService) -> bool:
    return bool(worker.status()["active"] == 0)
