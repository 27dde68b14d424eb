"""What one turn sends out: text events to the client, speech requests to TTS.

:class:`Reply` numbers the speech chunks, stamps the stage times, stops
sending the moment the turn is cancelled, and records how far it got in
:class:`TurnProgress` so that a worker which takes the turn over after a crash
does not speak the same sentences again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

from voicefleet.bus import Bus
from voicefleet.messages import Message, ReplyDelta, ReplyDone, SpeakRequest, TurnRequest, now
from voicefleet.sessions import SessionRecord

log = logging.getLogger(__name__)

PROGRESS_TTL_S = 600


def _texts(raw: dict[Any, Any]) -> dict[str, str]:
    """A Redis hash with its bytes decoded."""
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class TurnProgress:
    """How far a turn got (hash ``keys.turn_progress``): owner, chunks spoken, done."""

    def __init__(self, bus: Bus, session_id: str, turn_id: str) -> None:
        self.bus = bus
        self.key = bus.keys.turn_progress(session_id, turn_id)
        self.exists = False
        self.owner = ""
        self.chunks = 0
        self.chars = 0
        self.done = False

    async def load(self) -> TurnProgress:
        raw = _texts(await self.bus.redis.hgetall(self.key))
        self.exists = bool(raw)
        self.owner = raw.get("owner", "")
        self.chunks = int(raw.get("chunks", 0))
        self.chars = int(raw.get("chars", 0))
        self.done = raw.get("done") == "1"
        return self

    async def _save(self, **fields: str | int) -> None:
        pipe = self.bus.redis.pipeline(transaction=False)
        pipe.hset(self.key, mapping=cast(Any, fields))
        pipe.expire(self.key, PROGRESS_TTL_S)
        await pipe.execute()

    async def claim(self, owner: str) -> None:
        await self._save(owner=owner, started=str(now()))

    async def spoke(self, chunks: int, chars: int) -> None:
        await self._save(chunks=chunks, chars=chars)

    async def finish(self) -> None:
        await self._save(done=1)


class Reply:
    """The outgoing side of one turn."""

    def __init__(self, bus: Bus, request: TurnRequest, session: SessionRecord, progress: TurnProgress) -> None:
        self.bus = bus
        self.request = request
        self.session = session
        self.progress = progress
        self.ts: dict[str, float] = dict(request.ts)
        self.text = ""  # everything the model wrote (markdown kept)
        self.spoken: list[str] = []  # chunks handed to TTS
        self.seq = 0
        self.cancelled = False
        self._deltas = 0
        #: Set once the first chunk went to speech (or, text only, was cut): the model may serve others first.
        self.first_spoken = threading.Event()
        # Already done by a previous owner of this turn (it died mid-way).
        self._skip_chunks = progress.chunks
        self._skip_chars = progress.chars

    def stamp(self, stage: str) -> None:
        self.ts.setdefault(stage, now())

    def _fill(self, msg: Message) -> Message:
        msg.session_id, msg.turn_id = self.request.session_id, self.request.turn_id
        msg.ts = dict(self.ts)
        return msg

    async def delta(self, text: str) -> None:
        """Stream reply text to the client at once."""
        start = len(self.text)
        self.text += text
        if self.cancelled or len(self.text) <= self._skip_chars:
            return
        visible = text[max(0, self._skip_chars - start) :]
        await self.bus.emit(self._fill(ReplyDelta(text=visible, seq=self._deltas)))
        self._deltas += 1

    async def speak(self, text: str, final: bool = False) -> bool:
        """Request speech for one chunk; False once the turn is cancelled."""
        if self.cancelled or await self.bus.is_cancelled(self.request.session_id, self.request.turn_id):
            self.cancelled = True
            return False
        seq = self.seq
        self.seq += 1
        self.first_spoken.set()
        if seq >= self._skip_chunks and self.request.speak:
            self.stamp("first_chunk")
            request = SpeakRequest(
                text=text,
                seq=seq,
                final=final,
                voice=self.session.voice or None,
                speech_rate=self.session.speech_rate,
            )
            await self.bus.enqueue(self.bus.keys.speak, self._fill(request))
        if text:
            self.spoken.append(text)
        await self.progress.spoke(self.seq, len(self.text))
        return True

    async def speak_last(self, chunks: list[str]) -> None:
        """Speak the reply's remaining chunks, the last one marked final."""
        for i, chunk in enumerate(chunks):
            if not await self.speak(chunk, final=i == len(chunks) - 1):
                return
        if not chunks and self.seq:
            await self.speak("", final=True)  # tell TTS the turn has no more sentences

    async def done(self, interrupted: bool, backend: str = "") -> None:
        self.stamp("llm_done")
        text = self.spoken_text if interrupted else self.text
        msg = ReplyDone(text=text, chunks=self.seq, interrupted=interrupted, backend=backend)
        await self.bus.emit(self._fill(msg))

    @property
    def spoken_text(self) -> str:
        return " ".join(self.spoken)
