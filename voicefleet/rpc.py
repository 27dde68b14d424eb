"""Request and reply over the bus: one synthesis, one file transcription.

The HTTP routes (``/v1/tts``, ``/v1/audio/speech``, ``/v1/audio/transcriptions``)
and the Wyoming adapter all ask the workers through these functions: the work
goes on the same streams the voice sessions use (``speak``, ``transcribe``),
a worker pushes its answers to ``Keys.reply(request_id)``, and a request the
caller gives up on (deadline passed, client gone) is cancelled on the worker,
keyed by its request id, and its replies are dropped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from .bus import REDIS_DOWN, Bus
from .messages import AudioChunk, Error, Message, TranscribeRequest, TranscriptDone, TranscriptSegment, TtsRequest


class RequestFailed(Exception):
    """A worker answered with an error, or no worker could take the request; ``code`` names it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RequestTimedOut(RequestFailed):
    """No complete answer within the deadline (the request was cancelled on the worker)."""


async def ready_workers(bus: Bus, service: str) -> list[dict[str, Any]]:
    """The health records of the ready processes of ``service`` (raises :class:`RequestFailed` if Redis is down)."""
    try:
        services = await bus.health()
    except REDIS_DOWN as exc:
        raise RequestFailed("bus_unavailable", "The message bus is not reachable right now.") from exc
    return [s for s in services.get(service, []) if s.get("ready")]


async def _replies(
    bus: Bus, request_id: str, session_id: str, timeout_s: float, last: Callable[[Message], bool]
) -> AsyncGenerator[Message, None]:
    """The replies to one request in order, up to the one ``last`` accepts; cancels the request if left early."""
    started = time.monotonic()
    finished = False
    try:
        while True:
            left = timeout_s - (time.monotonic() - started)
            reply = await bus.wait_reply(request_id, left) if left > 0 else None
            if reply is None:
                raise RequestTimedOut("timeout", f"The request did not finish within {timeout_s:g} seconds.")
            if isinstance(reply, Error):
                finished = True
                raise RequestFailed(reply.code, reply.message)
            finished = last(reply)
            yield reply
            if finished:
                return
    finally:
        if not finished:
            # Nobody will read what the worker may still push: stop it (it checks between pieces).
            with contextlib.suppress(*REDIS_DOWN):
                await bus.cancel(session_id, request_id, "timeout")
                await bus.redis.delete(bus.keys.reply(request_id))


async def synthesize(bus: Bus, request: TtsRequest, timeout_s: float) -> AsyncGenerator[AudioChunk, None]:
    """Queue ``request`` on the ``speak`` stream and yield its audio as the TTS worker makes it."""
    await bus.enqueue(bus.keys.speak, request)
    replies = _replies(bus, request.request_id, request.session_id, timeout_s,
                       lambda m: isinstance(m, AudioChunk) and m.last)
    async with contextlib.aclosing(replies):
        async for reply in replies:
            if isinstance(reply, AudioChunk):
                yield reply


async def transcribe(
    bus: Bus, request: TranscribeRequest, timeout_s: float
) -> AsyncGenerator[TranscriptSegment | TranscriptDone, None]:
    """Queue ``request`` on the ``transcribe`` stream; yield each segment as decoded, then the result."""
    await bus.enqueue(bus.keys.transcribe, request)
    replies = _replies(bus, request.request_id, request.session_id, timeout_s,
                       lambda m: isinstance(m, TranscriptDone))
    async with contextlib.aclosing(replies):
        async for reply in replies:
            if isinstance(reply, (TranscriptSegment, TranscriptDone)):
                yield reply
