"""HTTP text-to-speech: ``POST /v1/tts`` returns a WAV, ``GET /v1/voices`` lists voices.

The gateway synthesizes nothing itself: a :class:`TtsRequest` goes on the same
``speak`` work stream the voice sessions use, a TTS worker answers it with
audio chunks through ``Bus.reply``, and the route joins them into a WAV file.

Wire it into the app with
``app.include_router(make_router(TtsHttpSettings.from_gateway(settings), dependencies=[...]))``;
the app must hold its :class:`~voicefleet.bus.Bus` in ``app.state.bus`` (or
pass ``get_bus``).
"""

from __future__ import annotations

import io
import logging
import time
import wave
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from voicefleet.audio import MAX_RATE, MIN_RATE
from voicefleet.bus import REDIS_DOWN, Bus
from voicefleet.messages import AudioChunk, Error, TtsRequest

from .settings import GatewaySettings

log = logging.getLogger(__name__)

TTS_SERVICE = "tts"
#: Worker error codes -> HTTP status.
_ERROR_STATUS = {"text_too_long": 413, "unknown_voice": 400}


class TtsHttpSettings(BaseModel):
    """Limits of the HTTP TTS routes, taken from the gateway's settings (see :meth:`from_gateway`)."""

    max_concurrent: int = Field(4, ge=1, description="Syntheses in flight per gateway process; more get 429")
    max_per_user: int = Field(2, ge=1, description="Syntheses in flight for one user; more get 429 (fairness)")
    timeout_s: float = Field(30.0, gt=0, description="Longest wait for a whole synthesis before 503")
    max_text_chars: int = Field(2000, ge=1, description="Longer texts get 413 (keep equal to VF_TTS_MAX_TEXT_CHARS)")
    default_sample_rate: int = Field(22050, ge=MIN_RATE, le=MAX_RATE, description="WAV rate when none is asked")

    @classmethod
    def from_gateway(cls, settings: GatewaySettings) -> TtsHttpSettings:
        return cls(
            max_concurrent=settings.tts_max_concurrent,
            max_per_user=settings.tts_max_per_user,
            timeout_s=settings.tts_timeout_s,
            max_text_chars=settings.max_text_chars,
        )


class TtsBody(BaseModel):
    """The JSON body of ``POST /v1/tts``."""

    text: str = Field(description="What to say (markdown, numbers and symbols are read naturally)")
    voice: str | None = Field(None, description="A name from GET /v1/voices; empty: the default voice")
    rate: float = Field(1.0, gt=0, le=4.0, description="Speaking rate: 1.0 normal, 1.5 faster, 0.8 slower")
    sample_rate: int | None = Field(None, ge=MIN_RATE, le=MAX_RATE, description="Rate of the WAV in Hz")


def bus_from_app_state(request: Request) -> Bus:
    """The default way to reach the bus: the app keeps it in ``app.state.bus``."""
    bus: Bus = request.app.state.bus
    return bus


def _problem(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, detail={"code": code, "message": message}, headers=headers)


async def _tts_workers(bus: Bus) -> list[dict[str, Any]]:
    try:
        services = await bus.health()
    except REDIS_DOWN as exc:
        raise _problem(503, "bus_unavailable", "The message bus is not reachable right now.") from exc
    return [s for s in services.get(TTS_SERVICE, []) if s.get("ready")]


def _wav(chunks: list[AudioChunk], default_rate: int) -> bytes:
    rate = chunks[0].sample_rate if chunks else default_rate
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        for chunk in chunks:
            wav.writeframes(chunk.audio)
    return out.getvalue()


def anonymous() -> str:
    """The default caller: every request counts as the same user."""
    return ""


def make_router(
    settings: TtsHttpSettings | None = None,
    get_bus: Callable[..., Bus] = bus_from_app_state,
    dependencies: Sequence[Any] | None = None,
    get_user: Callable[..., Any] = anonymous,
) -> APIRouter:
    """The TTS routes; ``dependencies`` (e.g. ``[Depends(require_jwt)]``) guard every route.

    ``get_user`` (a dependency returning the caller's user id) shares the
    slots fairly: no user holds more than ``max_per_user`` of them.
    """
    limits = settings or TtsHttpSettings()
    router = APIRouter(tags=["speech"], dependencies=list(dependencies or []))
    # Per process; asyncio is single-threaded, so plain counters are exact.
    in_flight = 0
    by_user: dict[str, int] = {}

    @router.post(
        "/v1/tts",
        response_class=Response,
        responses={200: {"content": {"audio/wav": {}}, "description": "16-bit mono WAV"}},
    )
    async def synthesize(body: TtsBody, bus: Bus = Depends(get_bus), user: str = Depends(get_user)) -> Response:
        """Speak ``text`` and return the audio as a WAV file."""
        nonlocal in_flight
        if not body.text.strip():
            raise _problem(400, "empty_text", "There is no text to speak.")
        if len(body.text) > limits.max_text_chars:
            raise _problem(
                413,
                "text_too_long",
                f"The text is {len(body.text)} characters long; at most {limits.max_text_chars} can be spoken at once.",
            )
        if in_flight >= limits.max_concurrent:
            raise _problem(
                429,
                "too_many_requests",
                f"{limits.max_concurrent} syntheses are already running; try again in a moment.",
                headers={"Retry-After": "1"},
            )
        if by_user.get(user, 0) >= limits.max_per_user:
            raise _problem(
                429,
                "too_many_requests",
                f"You already have {limits.max_per_user} syntheses running; wait for one to finish.",
                headers={"Retry-After": "1"},
            )
        in_flight += 1
        by_user[user] = by_user.get(user, 0) + 1
        try:
            return await _synthesize(bus, body)
        finally:
            in_flight -= 1
            by_user[user] -= 1
            if not by_user[user]:
                del by_user[user]

    async def _synthesize(bus: Bus, body: TtsBody) -> Response:
        if not await _tts_workers(bus):
            raise _problem(503, "tts_unavailable", "No text-to-speech worker is running right now.")
        request = TtsRequest(
            text=body.text,
            voice=body.voice or None,
            speech_rate=body.rate,
            sample_rate=body.sample_rate or limits.default_sample_rate,
        )
        request.stamp("gateway_received")
        started = time.monotonic()
        try:
            await bus.enqueue(bus.keys.speak, request)
            chunks = await _collect(bus, request, started)
        except REDIS_DOWN as exc:
            raise _problem(503, "bus_unavailable", "The message bus is not reachable right now.") from exc
        audio = _wav(chunks, request.sample_rate)
        log.info(
            "HTTP TTS %s: %d chars, %d chunks", request.request_id, len(body.text), len(chunks),
            extra={"ms": round((time.monotonic() - started) * 1000)},
        )  # fmt: skip
        return Response(content=audio, media_type="audio/wav")

    async def _collect(bus: Bus, request: TtsRequest, started: float) -> list[AudioChunk]:
        chunks: list[AudioChunk] = []
        while True:
            left = limits.timeout_s - (time.monotonic() - started)
            reply = await bus.wait_reply(request.request_id, left) if left > 0 else None
            if reply is None:
                # Nobody will read what the worker may still push: stop it (a cancel keyed by the
                # request id, which the worker checks between pieces) and let the replies go.
                await bus.cancel(request.session_id, request.request_id, "timeout")
                await bus.redis.delete(bus.keys.reply(request.request_id))
                raise _problem(
                    503, "tts_timeout", f"Speech synthesis did not finish within {limits.timeout_s:g} seconds."
                )
            if isinstance(reply, Error):
                raise _problem(_ERROR_STATUS.get(reply.code, 502), reply.code, reply.message)
            if isinstance(reply, AudioChunk):
                chunks.append(reply)
                if reply.last:
                    return chunks

    @router.get("/v1/voices")
    async def voices(bus: Bus = Depends(get_bus)) -> dict[str, Any]:
        """The voices the running TTS workers offer, and the default one."""
        workers = await _tts_workers(bus)
        if not workers:
            raise _problem(503, "tts_unavailable", "No text-to-speech worker is running right now.")
        by_name: dict[str, dict[str, Any]] = {}
        for worker in workers:
            infos = worker.get("voice_info") or [{"name": n} for n in worker.get("voices", [])]
            for info in infos:
                by_name.setdefault(info["name"], info)
        return {"voices": list(by_name.values()), "default": workers[0].get("default_voice")}

    return router
