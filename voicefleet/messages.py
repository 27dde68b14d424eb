"""The fleet's message vocabulary: every message on the bus and on the WebSocket.

Every message shares one envelope (:class:`Message`): ``type``, ``version``,
``session_id``, ``turn_id``, ``seq``, ``ts``, the wall-clock time (epoch
seconds) at which each stage touched it, and ``stream_id``: on a server event
sent to a client, its id in the session's out stream, after which a client
that lost its connection resumes (see :class:`Start`), and ``traceparent``: the
W3C trace context of the span that sent it (bus only, set by
:mod:`voicefleet.tracing` when tracing is on). Stage times are copied forward from
message to message, so one turn's latency can be broken down from the last
message alone.

Messages that carry audio keep it in the ``audio`` field, which is never part
of the JSON: the codec (:mod:`voicefleet.codec`) sends it as raw bytes beside
the header. ``type`` selects the class from a closed registry; a payload never
names a class to import.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic.json_schema import SkipJsonSchema

from .audio import BUS_RATE, samples_in, seconds_in

PROTOCOL_VERSION = 1

#: A W3C trace context header, version 00: ``00-<trace id>-<span id>-<flags>`` in lowercase hex.
TRACEPARENT_PATTERN = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


def new_id() -> str:
    """A short random id for sessions, turns, calls and requests."""
    return uuid.uuid4().hex[:16]


def now() -> float:
    return time.time()


class Message(BaseModel):
    """The envelope every message shares."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    type: str
    version: int = PROTOCOL_VERSION
    session_id: str = ""
    turn_id: str = ""
    seq: int = 0
    ts: dict[str, float] = Field(default_factory=dict)
    #: Server events only: the event's id in the session's out stream ("" for events sent directly).
    stream_id: str = ""
    #: The W3C ``traceparent`` of the span that sent this message (None when tracing is off). Bus only:
    #: the codec leaves it out of the JSON when None, the gateway never takes it from a client nor sends
    #: it to one. Version 00 only, so its size is fixed (55 characters).
    #: Left out of the WebSocket protocol's JSON Schemas (``json_schemas``): clients have no use for it.
    traceparent: SkipJsonSchema[Annotated[str, StringConstraints(pattern=TRACEPARENT_PATTERN)] | None] = None

    #: True for messages that carry raw audio beside the JSON header.
    has_audio: ClassVar[bool] = False

    def stamp(self, stage: str, at: float | None = None) -> Message:
        """Record when ``stage`` happened (now by default) and return self."""
        self.ts[stage] = now() if at is None else at
        return self

    def header(self) -> dict[str, Any]:
        """The JSON-safe part of the message (audio left out, and ``traceparent`` when there is none)."""
        return self.model_dump(mode="json", exclude=self.unsent_fields())

    def unsent_fields(self, trace: bool = True) -> set[str]:
        """The fields a header leaves out: the audio, and the trace context when None (or not ``trace``)."""
        return _NO_AUDIO if trace and self.traceparent is not None else _NO_AUDIO_NO_TRACE


_NO_AUDIO = {"audio"}
_NO_AUDIO_NO_TRACE = {"audio", "traceparent"}


class _AudioMessage(Message):
    has_audio: ClassVar[bool] = True
    audio: bytes = Field(default=b"", exclude=True, repr=False)
    sample_rate: int = BUS_RATE

    @property
    def samples(self) -> int:
        """Number of PCM16 samples carried."""
        return samples_in(self.audio)

    @property
    def seconds(self) -> float:
        """Duration of the audio carried."""
        return seconds_in(self.audio, self.sample_rate)


# ---------------------------------------------------------------------------
# Client -> gateway (JSON text frames on the WebSocket)
# ---------------------------------------------------------------------------

#: Size limits of what a client may put in a message (the one place they are enforced):
#: ids, names and ``ts`` keys are short; typed text has its own, larger bound (the gateway's
#: ``max_text_chars`` setting is the tighter, configurable one).
MAX_ID_CHARS = 64
MAX_NAME_CHARS = 64
MAX_TS_ENTRIES = 16
MAX_CLIENT_TEXT_CHARS = 16384
_Id = Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)]
_Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)]
_Rate = Annotated[float, Field(gt=0, le=4.0)]


class _ClientMessage(Message):
    """What every client message shares: the envelope with its strings and ``ts`` bounded."""

    session_id: _Id = ""
    turn_id: _Id = ""
    stream_id: _Id = ""
    ts: dict[_Name, float] = Field(default_factory=dict, max_length=MAX_TS_ENTRIES)


class Start(_ClientMessage):
    """First message of a connection: how the client sends and wants audio.

    To come back to a session after a dropped connection (within the
    gateway's grace period), a client sends ``resume_session_id`` (the
    ``ready.session_id`` it had), ``resume_after`` (the last non-empty
    ``stream_id`` it received) and ``resume_audio_bytes`` (bytes of reply
    audio received after that event); the events and audio it missed follow
    ``ready``.
    """

    type: Literal["start"] = "start"
    sample_rate: int = BUS_RATE
    output_sample_rate: int = 0  # 0: same as sample_rate
    wake_word: _Name | None = None  # None: always listening
    voice: _Name | None = None
    speech_rate: _Rate = 1.0
    language: _Name | None = None
    resume_session_id: _Id | None = None
    resume_after: _Id | None = None  # a stream_id; None: replay nothing missed
    resume_audio_bytes: int = Field(0, ge=0)
    #: The client cancels its own echo (it subtracts what it plays): the server skips its echo canceller.
    echo_cancelled: bool = False


class Configure(_ClientMessage):
    """Change session options mid-session; only the given fields change."""

    type: Literal["configure"] = "configure"
    wake_word: _Name | None = None
    listen_always: bool | None = None
    voice: _Name | None = None
    speech_rate: _Rate | None = None


class TextInput(_ClientMessage):
    """Typed text, handled like a final transcript."""

    type: Literal["text"] = "text"
    text: str = Field(max_length=MAX_CLIENT_TEXT_CHARS)


class Interrupt(_ClientMessage):
    """The client asks to stop the current reply (button press, barge-in it detected)."""

    type: Literal["interrupt"] = "interrupt"


class PlaybackStarted(_ClientMessage):
    """The client's speaker started playing reply audio (echo may follow)."""

    type: Literal["playback_started"] = "playback_started"


class PlaybackFinished(_ClientMessage):
    """The client's speaker went quiet."""

    type: Literal["playback_finished"] = "playback_finished"


class Stop(_ClientMessage):
    """The client ends the session."""

    type: Literal["stop"] = "stop"


# ---------------------------------------------------------------------------
# Gateway <-> workers, session audio stream
# ---------------------------------------------------------------------------


class AudioFrame(_AudioMessage):
    """PCM16LE mono from the client, already resampled to the bus rate by the gateway."""

    type: Literal["audio_frame"] = "audio_frame"


class SessionStarted(Message):
    """A session opened (written to its audio stream and announced)."""

    type: Literal["session_started"] = "session_started"
    user: str = ""
    wake_word: str | None = None


class SessionEnded(Message):
    """A session closed: owners release it."""

    type: Literal["session_ended"] = "session_ended"
    reason: str = ""


# ---------------------------------------------------------------------------
# Work items (streams with consumer groups)
# ---------------------------------------------------------------------------


class ChatEntry(BaseModel):
    """One earlier message of a conversation a client keeps itself (``POST /v1/chat/completions``)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class TurnRequest(Message):
    """Something to answer: a final transcript or typed text."""

    type: Literal["turn_request"] = "turn_request"
    user: str = ""
    text: str
    source: Literal["voice", "text"] = "voice"
    #: False: answer in text only, no speech requests (an HTTP chat client has no speaker).
    speak: bool = True
    #: The conversation so far as the client keeps it; None: the session's own history in Redis.
    history: list[ChatEntry] | None = None
    #: A voice turn whose audio went on from an earlier turn's (the STT carry-on): that turn's id. Its
    #: words are already in ``text``; the orchestrator must not put them in front a second time.
    continues: str = ""


class SpeakRequest(Message):
    """One speakable chunk of a reply; ``seq`` orders the chunks of a turn."""

    type: Literal["speak_request"] = "speak_request"
    text: str
    voice: str | None = None
    speech_rate: float = 1.0
    sample_rate: int = 0  # 0: the session's output rate (the TTS worker reads it from the session record)
    final: bool = False  # last chunk of the turn


class ToolCall(Message):
    """Invoke one tool; the answer is pushed to ``Keys.reply(call_id)``."""

    type: Literal["tool_call"] = "tool_call"
    call_id: str = Field(default_factory=new_id)
    user: str = ""
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ToolResult(Message):
    """The outcome of a tool call, also shown to the client."""

    type: Literal["tool_result"] = "tool_result"
    call_id: str = ""
    name: str = ""
    ok: bool = True
    text: str = ""
    data: Any = None


#: Cancel reasons of a barge-in: the person spoke over the reply (or while it was being prepared)...
BARGE_IN = "barge_in"
#: ...before any of it was heard: the orchestrator hears the next turn as the same request, this one's
#: words first (``llm_orchestrator.history.History.take_unheard``).
BARGE_IN_UNHEARD = "barge_in_unheard"


class Cancel(Message):
    """Stop everything for ``turn_id`` (or the whole session when empty)."""

    type: Literal["cancel"] = "cancel"
    reason: str = BARGE_IN


class TtsRequest(Message):
    """HTTP ``POST /v1/tts``: synthesize a whole text; chunks go to ``Keys.reply``."""

    type: Literal["tts_request"] = "tts_request"
    request_id: str = Field(default_factory=new_id)
    text: str
    voice: str | None = None
    speech_rate: float = 1.0
    sample_rate: int = 22050


class TranscribeRequest(_AudioMessage):
    """Transcribe a whole recording (HTTP ``/v1/audio/transcriptions``, Wyoming ``asr``).

    The audio is PCM16LE mono at the bus rate. A STT worker answers through
    ``Keys.reply(request_id)``: one :class:`TranscriptSegment` per segment as
    Whisper decodes it, then :class:`TranscriptDone` (or an :class:`Error`).
    """

    type: Literal["transcribe_request"] = "transcribe_request"
    request_id: str = Field(default_factory=new_id)
    #: A language code; None: the worker's default (``VF_STT_LANGUAGE``); "auto": detect.
    language: _Name | None = None
    #: Text that conditions Whisper (spellings, names, the previous sentence).
    prompt: str = Field("", max_length=MAX_CLIENT_TEXT_CHARS)
    #: Word timestamps (slower: Whisper aligns every word).
    words: bool = False


class WordTiming(BaseModel):
    """One word of a transcript and when it was said (seconds from the start of the recording)."""

    model_config = ConfigDict(extra="forbid")

    word: str
    start: float
    end: float
    probability: float = 0.0


class TranscriptSegment(Message):
    """One decoded segment of a :class:`TranscribeRequest`; ``seq`` numbers them from 0."""

    type: Literal["transcript_segment"] = "transcript_segment"
    text: str = ""
    start: float = 0.0
    end: float = 0.0
    words: list[WordTiming] = Field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0


class TranscriptDone(Message):
    """A :class:`TranscribeRequest` is finished: the whole text, the language heard, the audio's length."""

    type: Literal["transcript_done"] = "transcript_done"
    text: str = ""
    language: str | None = None
    duration: float = 0.0
    model: str = ""


# ---------------------------------------------------------------------------
# Server -> client events (JSON on the WebSocket; also on the session out stream)
# ---------------------------------------------------------------------------


class Ready(Message):
    """The session is open; ``session_id`` names it; ``resumed``: it is the session the client asked to resume."""

    type: Literal["ready"] = "ready"
    sample_rate: int = BUS_RATE
    output_sample_rate: int = BUS_RATE
    wake_words: list[str] = Field(default_factory=list)
    voices: list[str] = Field(default_factory=list)
    max_frame_bytes: int = 0
    #: Seconds of audio per second of wall time the gateway accepts, and how far ahead a client may be
    #: (0: not said): a client streaming faster than real time paces itself by these.
    max_audio_speed: float = 0.0
    audio_burst_s: float = 0.0
    resumed: bool = False


class Wake(Message):
    type: Literal["wake"] = "wake"
    word: str
    score: float = 0.0


class SpeechStarted(Message):
    type: Literal["speech_started"] = "speech_started"
    audio_ms: float = 0.0  # position in the session's input audio


class SpeechStopped(Message):
    type: Literal["speech_stopped"] = "speech_stopped"
    audio_ms: float = 0.0
    reason: Literal["silence", "max_length"] = "silence"


class TranscriptPartial(Message):
    type: Literal["transcript_partial"] = "transcript_partial"
    text: str


class TranscriptFinal(Message):
    type: Literal["transcript_final"] = "transcript_final"
    text: str
    language: str | None = None


class ReplyDelta(Message):
    """Streamed reply text (markdown kept)."""

    type: Literal["reply_delta"] = "reply_delta"
    text: str


class ReplyDone(Message):
    """The reply is complete; ``chunks`` speech chunks were requested for it."""

    type: Literal["reply_done"] = "reply_done"
    text: str = ""
    chunks: int = 0
    interrupted: bool = False
    backend: str = ""


class AudioChunk(_AudioMessage):
    """Reply audio; ``seq`` is the speech chunk, ``index`` the piece within it."""

    type: Literal["audio_chunk"] = "audio_chunk"
    index: int = 0
    last: bool = False  # last piece of this speech chunk
    final: bool = False  # ...and that chunk was the turn's last


class AudioStart(Message):
    """Reply audio of ``turn_id`` begins; binary frames follow at ``sample_rate``."""

    type: Literal["audio_start"] = "audio_start"
    sample_rate: int = BUS_RATE


class AudioEnd(Message):
    type: Literal["audio_end"] = "audio_end"


class Interrupted(Message):
    """The turn was cancelled: flush playback now."""

    type: Literal["interrupted"] = "interrupted"
    reason: str = "barge_in"


class Notice(Message):
    """Something the user should know that is not an error (fallback used, timer...)."""

    type: Literal["notice"] = "notice"
    code: str
    message: str


class Error(Message):
    """Something went wrong; ``message`` is a sentence for a person."""

    type: Literal["error"] = "error"
    code: str
    message: str


#: Every message type: the closed registry's contents.
ALL_MESSAGES: tuple[type[Message], ...] = (
    Start, Configure, TextInput, Interrupt, PlaybackStarted, PlaybackFinished, Stop,
    AudioFrame, SessionStarted, SessionEnded,
    TurnRequest, SpeakRequest, ToolCall, ToolResult, Cancel, TtsRequest,
    TranscribeRequest, TranscriptSegment, TranscriptDone,
    Ready, Wake, SpeechStarted, SpeechStopped, TranscriptPartial, TranscriptFinal,
    ReplyDelta, ReplyDone, AudioChunk, AudioStart, AudioEnd, Interrupted, Notice, Error,
)

#: The closed registry: ``type`` -> class.
REGISTRY: dict[str, type[Message]] = {cls.model_fields["type"].default: cls for cls in ALL_MESSAGES}


def _union(classes: tuple[type[Message], ...]) -> TypeAdapter[Any]:
    """A validator that picks the class by the ``type`` field."""
    # Union[tuple] spreads the tuple; the X | Y form cannot be built from a tuple.
    return TypeAdapter(Annotated[Union[classes], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007

#: What a client may send as JSON text frames.
CLIENT_MESSAGES: tuple[type[Message], ...] = (
    Start,
    Configure,
    TextInput,
    Interrupt,
    PlaybackStarted,
    PlaybackFinished,
    Stop,
)

#: What the server sends to a client as JSON text frames.
SERVER_EVENTS: tuple[type[Message], ...] = (
    Ready,
    Wake,
    SpeechStarted,
    SpeechStopped,
    TranscriptPartial,
    TranscriptFinal,
    ReplyDelta,
    ReplyDone,
    ToolCall,
    ToolResult,
    AudioStart,
    AudioEnd,
    Interrupted,
    Notice,
    Error,
)


def json_schemas() -> dict[str, Any]:
    """JSON Schemas of the WebSocket protocol, for client writers in other languages."""
    client, server = _union(CLIENT_MESSAGES), _union(SERVER_EVENTS)
    return {
        "version": PROTOCOL_VERSION,
        "client_to_server": client.json_schema(),
        "server_to_client": server.json_schema(),
        "binary": {
            "client_to_server": "PCM16LE mono at the session's sample_rate (declared in 'start')",
            "server_to_client": "PCM16LE mono at audio_start.sample_rate",
        },
    }
