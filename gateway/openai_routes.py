"""The OpenAI-compatible API: ``/v1/audio/transcriptions``, ``/v1/audio/speech``, ``/v1/models``, chat completions.

The JWT is the API key (``Authorization: Bearer``). Nothing is computed here
that the fleet does not already do elsewhere: a transcription is a
:class:`TranscribeRequest` to a STT worker, speech is the ``/v1/tts``
request (same slots, same worker path) streamed through an encoder, and a
chat completion is a typed turn of the user's answered by the orchestrator
(memory and tools included), read back from a session of its own. Errors
have OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from voicefleet import rpc
from voicefleet.audio import BUS_RATE
from voicefleet.bus import REDIS_DOWN, Bus
from voicefleet.messages import (
    ChatEntry,
    Error,
    ReplyDelta,
    ReplyDone,
    ToolCall,
    ToolResult,
    TranscribeRequest,
    TranscriptDone,
    TranscriptSegment,
    TtsRequest,
    TurnRequest,
    new_id,
)
from voicefleet.sessions import Sessions

from . import audio_files
from .settings import GatewaySettings
from .slots import Refused, Slots
from .tts_routes import ERROR_STATUS, TTS_SERVICE, bus_from_app_state

log = logging.getLogger(__name__)

#: Paths served here: validation errors on them get OpenAI's error shape too.
PATHS = ("/v1/audio/transcriptions", "/v1/audio/speech", "/v1/models", "/v1/chat/completions")
#: What the assistant is called in ``/v1/models`` and chat answers; any model name is accepted.
ASSISTANT_MODEL = "voicefleet"
#: OpenAI's built-in voice names: they mean the fleet's default voice.
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar"}
)
#: Reply audio is made at 24 kHz, as OpenAI's (its ``pcm`` is documented as 24 kHz PCM16LE mono).
SPEECH_RATE_HZ = 24000
TRANSCRIPT_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
          413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 502: "server_error",
          503: "server_error"}


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self, status: int, message: str, code: str | None = None, param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": _TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _refused(exc: Refused) -> OpenAIError:
    return OpenAIError(429, exc.message, "rate_limit_exceeded", headers={"Retry-After": str(exc.retry_after_s)})


def _failed(exc: rpc.RequestFailed) -> OpenAIError:
    if isinstance(exc, rpc.RequestTimedOut):
        return OpenAIError(503, exc.message, "timeout")
    return OpenAIError(ERROR_STATUS.get(exc.code, 502), exc.message, exc.code)


class _Once:
    """A cleanup that runs once: when a streamed body ends, or when its response is dropped unstarted."""

    #: Cleanups started from a finalizer, kept until they finish.
    pending: ClassVar[set[asyncio.Task[Any]]] = set()

    def __init__(self, cleanup: Callable[[], Any]) -> None:
        self.cleanup, self.done = cleanup, False

    async def run(self) -> None:
        if not self.done:
            self.done = True
            result = self.cleanup()
            if inspect.isawaitable(result):
                await result

    def from_finalizer(self) -> None:
        """The client left before the body started (its generator never ran, so its ``finally`` never will)."""
        if self.done:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: the process is stopping
            task = asyncio.get_running_loop().create_task(self.run())
            _Once.pending.add(task)
            task.add_done_callback(_Once.pending.discard)


def _streaming(body: AsyncIterator[bytes], media_type: str, cleanup: Callable[[], Any]) -> StreamingResponse:
    """A streamed answer whose ``cleanup`` (a slot given back, a turn let go) runs exactly once, whatever happens."""
    once = _Once(cleanup)

    async def guarded() -> AsyncIterator[bytes]:
        try:
            async for part in body:
                yield part
        finally:
            try:
                await body.aclose()  # type: ignore[attr-defined]
            finally:
                await once.run()

    response = StreamingResponse(guarded(), media_type=media_type)
    weakref.finalize(response, once.from_finalizer)
    return response


def _sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


# ---------------------------------------------------------------------------------------------- transcripts
def _clock(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{separator}{ms % 1000:03d}"


def srt(segments: list[TranscriptSegment]) -> str:
    """SubRip subtitles: one cue per segment."""
    return "".join(f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text.strip()}\n\n"
                   for i, s in enumerate(segments, 1))


def vtt(segments: list[TranscriptSegment]) -> str:
    """WebVTT subtitles: one cue per segment."""
    return "WEBVTT\n\n" + "".join(f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text.strip()}\n\n"
                                  for s in segments)


def verbose(done: TranscriptDone, segments: list[TranscriptSegment], granularities: set[str]) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: segments by default, words when asked."""
    body: dict[str, Any] = {"task": "transcribe", "language": done.language or "", "duration": done.duration,
                            "text": done.text}
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {"id": s.seq, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [],
             "temperature": s.temperature, "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
             "no_speech_prob": s.no_speech_prob}
            for s in segments
        ]
    if "word" in granularities:
        body["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end} for s in segments for w in s.words]
    return body


# ---------------------------------------------------------------------------------------------- request bodies
class SpeechBody(BaseModel):
    """``POST /v1/audio/speech``."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field("tts-1", description="Accepted and ignored: the fleet's TTS workers speak")
    input: str = Field(description="What to say")
    voice: str = Field("", description="A voice of GET /v1/voices; OpenAI's names (alloy...) mean the default")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(None, description="Not supported: refused when given")
    stream_format: Literal["audio", "sse"] = Field("audio", description="Only 'audio' is supported")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatBody(BaseModel):
    """``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="ignore")

    model: str = ASSISTANT_MODEL
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    n: int = Field(1, ge=1, le=1)
    tools: list[dict[str, Any]] | None = Field(None, description="Not supported: the assistant runs its own tools")


def _text_of(message: ChatMessage) -> str:
    """The text of a message: a string, or the ``text`` parts of a list (images and audio are refused)."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for part in message.content:
        if part.get("type") != "text":
            raise OpenAIError(400, f"content parts of type {part.get('type')!r} are not supported; send text",
                              "unsupported_content", "messages")
        texts.append(str(part.get("text", "")))
    return "".join(texts)


# ---------------------------------------------------------------------------------------------- the router
def make_router(
    settings: GatewaySettings,
    get_principal: Callable[..., Any],
    tts_slots: Slots,
    get_bus: Callable[..., Bus] = bus_from_app_state,
) -> APIRouter:
    """The OpenAI-compatible routes; ``get_principal`` is a dependency returning the caller's user id."""
    router = APIRouter(tags=["openai"])
    stt_slots = Slots("transcriptions", settings.transcribe_max_concurrent, settings.transcribe_max_per_user)
    chat_slots = Slots("chat completions", settings.chat_max_concurrent, settings.chat_max_per_user)

    async def require_workers(bus: Bus, service: str, what: str) -> list[dict[str, Any]]:
        try:
            workers = await rpc.ready_workers(bus, service)
        except rpc.RequestFailed as exc:
            raise OpenAIError(503, exc.message, exc.code) from None
        if not workers:
            raise OpenAIError(503, f"No {what} worker is running right now.", f"{service}_unavailable")
        return workers

    # ------------------------------------------------------------------ models
    @router.get("/v1/models", summary="The models the live workers run (OpenAI's list shape)")
    async def models(bus: Bus = Depends(get_bus), user: str = Depends(get_principal)) -> dict[str, Any]:
        try:
            health = await bus.health()
        except REDIS_DOWN:
            raise OpenAIError(503, "The message bus is not reachable right now.", "bus_unavailable") from None
        created = int(time.time())
        found: dict[str, dict[str, Any]] = {}

        def add(model_id: str, kind: str, **extra: Any) -> None:
            found.setdefault(model_id, {"id": model_id, "object": "model", "created": created,
                                        "owned_by": "voicefleet", "kind": kind, **extra})

        ready = {name: [w for w in workers if w.get("ready")] for name, workers in health.items()}
        if ready.get("llm"):
            add(ASSISTANT_MODEL, "chat", description="the assistant: memory, tools, and the model(s) below")
        for worker in ready.get("llm", []):
            for backend in worker.get("backends", []):
                if backend.get("model"):
                    add(str(backend["model"]), "chat", backend=backend.get("name", ""))
        for worker in ready.get("stt", []):
            for model in worker.get("asr_models", []):
                add(str(model["name"]), "transcription", languages=model.get("languages", []))
        for worker in ready.get(TTS_SERVICE, []):
            for voice in worker.get("voice_info", []):
                add(f"{voice.get('engine') or 'piper'}:{voice['name']}", "speech", voice=voice["name"],
                    language=voice.get("language", ""))
        return {"object": "list", "data": list(found.values())}

    # ------------------------------------------------------------------ transcriptions
    @router.post("/v1/audio/transcriptions", summary="Speech to text of an uploaded file (a STT worker transcribes)")
    async def transcriptions(
        file: Annotated[UploadFile, File(description="Audio in any format FFmpeg reads")],
        model: Annotated[str, Form()] = "whisper-1",
        language: Annotated[str | None, Form()] = None,
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[str, Form()] = "json",
        temperature: Annotated[float | None, Form()] = None,
        timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
        stream: Annotated[bool, Form()] = False,
        bus: Bus = Depends(get_bus),
        user: str = Depends(get_principal),
    ) -> Response:
        if response_format not in TRANSCRIPT_FORMATS:
            raise OpenAIError(400, f"response_format must be one of {', '.join(TRANSCRIPT_FORMATS)}",
                              "invalid_value", "response_format")
        granularities = set(timestamp_granularities or [])
        if granularities - {"word", "segment"}:
            raise OpenAIError(400, "timestamp_granularities[] takes 'word' and 'segment'", "invalid_value",
                              "timestamp_granularities")
        if language is not None and len(language) > 16:
            raise OpenAIError(400, "language must be a language code such as 'en'", "invalid_value", "language")
        if prompt is not None and len(prompt) > settings.max_text_chars:
            raise OpenAIError(400, f"prompt is over {settings.max_text_chars} characters", "text_too_long", "prompt")
        await require_workers(bus, "stt", "speech-to-text")
        try:
            stt_slots.acquire(user)
        except Refused as exc:
            raise _refused(exc) from None
        try:
            audio = await _read_audio(file, settings)
            words = "word" in granularities and response_format == "verbose_json"
            job = TranscribeRequest(audio=audio.tobytes(), language=language or None, prompt=prompt or "",
                                    words=words).stamp("gateway_received")
            answers = rpc.transcribe(bus, job, settings.transcribe_timeout_s)
            if stream:
                first = await _first(answers)
                return _streaming(_transcript_events(first, answers), "text/event-stream",
                                  lambda: stt_slots.release(user))
            segments: list[TranscriptSegment] = []
            done = TranscriptDone()
            async with contextlib.aclosing(answers):
                async for answer in answers:
                    if isinstance(answer, TranscriptSegment):
                        segments.append(answer)
                    else:
                        done = answer
        except rpc.RequestFailed as exc:
            stt_slots.release(user)
            raise _failed(exc) from None
        except BaseException:
            stt_slots.release(user)
            raise
        stt_slots.release(user)
        log.info("transcription for %s: %.1f s of audio, %d segments", user, done.duration, len(segments))
        if response_format == "text":
            return PlainTextResponse(done.text + "\n")
        if response_format == "srt":
            return PlainTextResponse(srt(segments))
        if response_format == "vtt":
            return PlainTextResponse(vtt(segments), media_type="text/vtt")
        if response_format == "verbose_json":
            return JSONResponse(verbose(done, segments, granularities))
        return JSONResponse({"text": done.text})

    # ------------------------------------------------------------------ speech
    @router.post("/v1/audio/speech", summary="Text to speech, streamed as it is made (the /v1/tts request)",
                 response_class=Response)
    async def speech(body: SpeechBody, bus: Bus = Depends(get_bus), user: str = Depends(get_principal)) -> Response:
        if body.instructions:
            raise OpenAIError(400, "instructions are not supported by the fleet's voices", "unsupported",
                              "instructions")
        if body.stream_format != "audio":
            raise OpenAIError(400, "only stream_format 'audio' is supported", "unsupported", "stream_format")
        if not body.input.strip():
            raise OpenAIError(400, "input is empty", "empty_input", "input")
        if len(body.input) > settings.max_text_chars:
            raise OpenAIError(400, f"input is over {settings.max_text_chars} characters", "text_too_long", "input")
        workers = await require_workers(bus, TTS_SERVICE, "text-to-speech")
        offered = {v for w in workers for v in w.get("voices", [])}
        voice: str | None = body.voice
        if not voice or (voice.lower() in OPENAI_VOICES and voice not in offered):
            voice = None  # the default voice
        try:
            tts_slots.acquire(user)
        except Refused as exc:
            raise _refused(exc) from None
        try:
            request = TtsRequest(text=body.input, voice=voice, speech_rate=body.speed,
                                 sample_rate=SPEECH_RATE_HZ).stamp("gateway_received")
            chunks = rpc.synthesize(bus, request, settings.tts_timeout_s)
            first = await _first(chunks)  # errors (unknown voice...) still get a status code
        except rpc.RequestFailed as exc:
            tts_slots.release(user)
            raise _failed(exc) from None
        except BaseException:
            tts_slots.release(user)
            raise
        encoder = audio_files.Encoder(body.response_format, first.sample_rate)

        async def audio() -> AsyncIterator[bytes]:
            try:
                yield await asyncio.to_thread(encoder.push, first.audio)
                async with contextlib.aclosing(chunks):
                    async for chunk in chunks:
                        data = await asyncio.to_thread(encoder.push, chunk.audio)
                        if data:
                            yield data
                yield await asyncio.to_thread(encoder.finish)
            except rpc.RequestFailed as exc:  # too late for a status: the stream ends short
                log.warning("speech for %s ended early: %s", user, exc.message)

        return _streaming(audio(), encoder.media_type, lambda: tts_slots.release(user))

    # ------------------------------------------------------------------ chat
    @router.post("/v1/chat/completions", summary="The assistant (memory, tools), as a typed turn of the user")
    async def chat(body: ChatBody, bus: Bus = Depends(get_bus), user: str = Depends(get_principal)) -> Response:
        if body.tools:
            raise OpenAIError(400, "client-side tools are not supported: the assistant runs its own", "unsupported",
                              "tools")
        last = body.messages[-1]
        if last.role != "user":
            raise OpenAIError(400, "the last message must be the user's", "invalid_value", "messages")
        text = _text_of(last).strip()
        if not text:
            raise OpenAIError(400, "the last message is empty", "empty_text", "messages")
        if len(text) > settings.max_text_chars:
            raise OpenAIError(400, f"the message is over {settings.max_text_chars} characters", "text_too_long",
                              "messages")
        history = [ChatEntry(role=m.role, content=_text_of(m))  # type: ignore[arg-type]
                   for m in body.messages[:-1] if m.role in ("user", "assistant") and _text_of(m).strip()]
        await require_workers(bus, "llm", "assistant")
        try:
            chat_slots.acquire(user)
        except Refused as exc:
            raise _refused(exc) from None
        turn = _ChatTurn(bus, user, body.model, settings.chat_timeout_s)
        try:
            await turn.start(text, history)
        except BaseException:
            chat_slots.release(user)
            raise

        async def finish() -> None:
            chat_slots.release(user)
            await turn.close()

        if body.stream:
            return _streaming(turn.chunks(), "text/event-stream", finish)
        try:
            return JSONResponse(await turn.completion())
        finally:
            await finish()

    return router


async def _read_audio(file: UploadFile, settings: GatewaySettings) -> Any:
    data = await file.read()
    if not data:
        raise OpenAIError(400, "the file is empty", "empty_file", "file")
    try:
        audio = await asyncio.to_thread(audio_files.decode_upload, data)
    except audio_files.AudioFileError as exc:
        raise OpenAIError(400, f"{file.filename or 'the file'}: {exc}", "invalid_file", "file") from None
    seconds = audio.size / BUS_RATE
    if seconds > settings.max_upload_s:
        raise OpenAIError(400, f"the recording is {seconds:.0f} s long; at most {settings.max_upload_s:g} s",
                          "audio_too_long", "file")
    if audio.size == 0:
        raise OpenAIError(400, "the file holds no audio", "empty_file", "file")
    return audio


async def _first(answers: AsyncIterator[Any]) -> Any:
    """The first answer of a request, so that a failure still gets a status code before streaming starts."""
    try:
        return await anext(answers)
    except StopAsyncIteration:
        raise OpenAIError(502, "the worker answered nothing", "empty_answer") from None


async def _transcript_events(
    first: TranscriptSegment | TranscriptDone, answers: AsyncIterator[TranscriptSegment | TranscriptDone]
) -> AsyncIterator[bytes]:
    """``transcript.text.delta`` per segment as Whisper decodes it, then ``transcript.text.done``."""
    said = 0

    def event(answer: TranscriptSegment | TranscriptDone) -> bytes:
        nonlocal said
        if isinstance(answer, TranscriptDone):
            return _sse({"type": "transcript.text.done", "text": answer.text})
        delta = answer.text.strip()
        if not delta:
            return b""
        said += 1
        return _sse({"type": "transcript.text.delta", "delta": (" " if said > 1 else "") + delta})

    try:
        yield event(first)
        async with contextlib.aclosing(answers):
            async for answer in answers:
                data = event(answer)
                if data:
                    yield data
    except rpc.RequestFailed as exc:  # too late for a status: an error event ends the stream
        yield _sse({"type": "error", "error": {"message": exc.message, "type": "server_error", "code": exc.code}})


class _ChatTurn:
    """One chat completion: a typed turn in a session of its own, read back from the session's out stream."""

    def __init__(self, bus: Bus, user: str, model: str, timeout_s: float) -> None:
        self.bus, self.user, self.model, self.timeout_s = bus, user, model, timeout_s
        self.sessions = Sessions(bus)
        self.session_id = new_id()
        self.turn_id = ""
        self.id = f"chatcmpl-{new_id()}"
        self.created = int(time.time())
        self.finished = False

    async def start(self, text: str, history: list[ChatEntry]) -> None:
        try:
            self.turn_id = await self.sessions.start_turn(self.session_id, reason="new_turn")
            request = TurnRequest(session_id=self.session_id, turn_id=self.turn_id, user=self.user, text=text,
                                  source="text", speak=False, history=history).stamp("eot").stamp("transcript")
            await self.bus.enqueue(self.bus.keys.turns, request)
        except REDIS_DOWN:
            raise OpenAIError(503, "The message bus is not reachable right now.", "bus_unavailable") from None

    async def events(self) -> AsyncIterator[ReplyDelta | ToolCall | ToolResult | Error | ReplyDone]:
        """The turn's events in order, up to its ``reply_done``."""
        last: bytes | str = "0-0"
        deadline = time.monotonic() + self.timeout_s
        stream = self.bus.keys.out(self.session_id)
        while time.monotonic() < deadline:
            for entry in await self.bus.read(stream, last, block_ms=1000):
                last = entry.id
                msg = entry.message
                if msg is None or msg.turn_id not in ("", self.turn_id):
                    continue
                if isinstance(msg, (ReplyDelta, ToolCall, ToolResult, Error)):
                    yield msg
                elif isinstance(msg, ReplyDone):
                    self.finished = True
                    yield msg
                    return
        raise OpenAIError(503, f"The assistant did not answer within {self.timeout_s:g} seconds.", "timeout")

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}

    async def chunks(self) -> AsyncIterator[bytes]:
        """``chat.completion.chunk`` events; the tools the assistant ran ride along as ``voicefleet`` fields."""
        try:
            yield _sse(self._chunk({"role": "assistant", "content": ""}))
            async for event in self.events():
                if isinstance(event, ReplyDelta):
                    yield _sse(self._chunk({"content": event.text}))
                elif isinstance(event, (ToolCall, ToolResult, Error)):
                    yield _sse(self._chunk({}, voicefleet=_extension(event)))
                else:
                    yield _sse(self._chunk({}, "stop"))
            yield _sse("[DONE]")
        except OpenAIError as exc:
            yield _sse(exc.body())

    async def completion(self) -> dict[str, Any]:
        """The whole reply as one ``chat.completion``."""
        text, extensions = "", []
        async for event in self.events():
            if isinstance(event, ReplyDelta):
                text += event.text
            elif isinstance(event, (ToolCall, ToolResult, Error)):
                extensions.append(_extension(event))
        message = {"role": "assistant", "content": text}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": None, "voicefleet": {"events": extensions}}

    async def close(self) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            await self.sessions.forget(self.session_id, cancel=not self.finished)


def _extension(event: ToolCall | ToolResult | Error) -> dict[str, Any]:
    """What the assistant did besides writing (a tool it ran, an error), for clients that look."""
    if isinstance(event, ToolCall):
        return {"type": "tool_call", "name": event.name, "arguments": event.args}
    if isinstance(event, ToolResult):
        return {"type": "tool_result", "name": event.name, "ok": event.ok, "text": event.text}
    return {"type": "error", "code": event.code, "message": event.message}
