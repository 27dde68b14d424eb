"""HTTP text-to-speech: ``POST /v1/tts`` returns a WAV, ``GET /v1/voices`` lists voices.

The gateway synthesizes nothing itself: a :class:`TtsRequest` goes on the same
``speak`` work stream the voice sessions use (:func:`voicefleet.rpc.synthesize`),
a TTS worker answers it with audio chunks through ``Bus.reply``, and the route
joins them into a WAV file. ``/v1/audio/speech`` (:mod:`gateway.openai_routes`)
is the same request, streamed, and takes the same :class:`~gateway.slots.Slots`.

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

from voicefleet import rpc
from voicefleet.audio import MAX_RATE, MIN_RATE
from voicefleet.bus import REDIS_DOWN, Bus
from voicefleet.messages import AudioChunk, TtsRequest

from .settings import GatewaySettings
from .slots import Refused, Slots

log = logging.getLogger(__name__)

TTS_SERVICE = "tts"
#: Worker error codes -> HTTP status.
ERROR_STATUS = {"text_too_long": 413, "unknown_voice": 400, "timeout": 503, "bus_unavailable": 503}


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

    def slots(self) -> Slots:
        return Slots("syntheses", self.max_concurrent, self.max_per_user)


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
        return await rpc.ready_workers(bus, TTS_SERVICE)
    except rpc.RequestFailed as exc:
        raise _problem(503, exc.code, exc.message) from exc


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
    slots: Slots | None = None,
) -> APIRouter:
    """The TTS routes; ``dependencies`` (e.g. ``[Depends(require_jwt)]``) guard every route.

    ``get_user`` (a dependency returning the caller's user id) shares the
    slots fairly: no user holds more than ``max_per_user`` of them. ``slots``:
    the ones ``/v1/audio/speech`` takes too (a router of its own when None).
    """
    limits = settings or TtsHttpSettings()
    router = APIRouter(tags=["speech"], dependencies=list(dependencies or []))
    in_flight = slots or limits.slots()

    @router.post(
        "/v1/tts",
        response_class=Response,
        responses={200: {"content": {"audio/wav": {}}, "description": "16-bit mono WAV"}},
    )
    async def synthesize(body: TtsBody, bus: Bus = Depends(get_bus), user: str = Depends(get_user)) -> Response:
        """Speak ``text`` and return the audio as a WAV file."""
        if not body.text.strip():
            raise _problem(400, "empty_text", "There is no text to speak.")
        if len(body.text) > limits.max_text_chars:
            raise _problem(
                413,
                "text_too_long",
                f"The text is {len(body.text)} characters long; at most {limits.max_text_chars} can be spoken at once.",
            )
        try:
            with in_flight.take(user):
                return await _synthesize(bus, body)
        except Refused as exc:
            raise _problem(429, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after_s)}) from None

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
        chunks: list[AudioChunk] = []
        try:
            async for chunk in rpc.synthesize(bus, request, limits.timeout_s):
                chunks.append(chunk)
        except rpc.RequestTimedOut:
            raise _problem(
                503, "tts_timeout", f"Speech synthesis did not finish within {limits.timeout_s:g} seconds."
            ) from None
        except rpc.RequestFailed as exc:
            raise _problem(ERROR_STATUS.get(exc.code, 502), exc.code, exc.message) from None
        except REDIS_DOWN as exc:
            raise _problem(503, "bus_unavailable", "The message bus is not reachable right now.") from exc
        audio = _wav(chunks, request.sample_rate)
        log.info(
            "HTTP TTS %s: %d chars, %d chunks", request.request_id, len(body.text), len(chunks),
            extra={"ms": round((time.monotonic() - started) * 1000)},
        )  # fmt: skip
        return Response(content=audio, media_type="audio/wav")

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
