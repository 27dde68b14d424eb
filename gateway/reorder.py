"""Put reply audio back in order before it reaches the client.

Several TTS processes may synthesize the sentences of one turn at once, so
chunks arrive out of order. :class:`AudioOrder` releases them in ``(seq,
index)`` order and frames each turn with ``audio_start``/``audio_end``.
Pure logic: no I/O, tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voicefleet.messages import AudioChunk, AudioEnd, AudioStart, Message

#: What to send next: a JSON event, or raw PCM bytes.
Output = Message | bytes


@dataclass
class _Turn:
    turn_id: str
    seq: int = 0
    index: int = 0
    started: bool = False
    ended: bool = False
    pending: dict[tuple[int, int], AudioChunk] = field(default_factory=dict)


class AudioOrder:
    """Reorders the audio chunks of one session's turns."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._turn: _Turn | None = None
        self._dropped: set[str] = set()

    @property
    def playing_turn(self) -> str | None:
        """The turn whose audio started and has not ended."""
        turn = self._turn
        return turn.turn_id if turn and turn.started and not turn.ended else None

    def drop(self, turn_id: str) -> None:
        """Forget a cancelled turn; its late chunks are ignored."""
        self._dropped.add(turn_id)
        if self._turn is not None and self._turn.turn_id == turn_id:
            self._turn = None

    def push(self, chunk: AudioChunk) -> list[Output]:
        if chunk.turn_id in self._dropped:
            return []
        out: list[Output] = []
        turn = self._turn
        if turn is None or turn.turn_id != chunk.turn_id:
            if turn is not None and turn.ended and chunk.turn_id == turn.turn_id:
                return []
            # A new turn supersedes the old one: close the old one's audio.
            if turn is not None and turn.started and not turn.ended:
                out.append(AudioEnd(session_id=self.session_id, turn_id=turn.turn_id))
            turn = self._turn = _Turn(chunk.turn_id)
        if turn.ended or (chunk.seq, chunk.index) < (turn.seq, turn.index):
            return out  # a duplicate (re-synthesized after a worker died)
        turn.pending[(chunk.seq, chunk.index)] = chunk
        while (nxt := turn.pending.pop((turn.seq, turn.index), None)) is not None:
            if not turn.started:
                turn.started = True
                start = AudioStart(
                    session_id=self.session_id,
                    turn_id=turn.turn_id,
                    sample_rate=nxt.sample_rate,
                    ts=dict(nxt.ts),
                    traceparent=nxt.traceparent,  # the gateway's reply_audio span hangs under the first chunk's
                )
                out.append(start)
            if nxt.audio:
                out.append(nxt.audio)
            if nxt.last:
                if nxt.final:
                    turn.ended = True
                    turn.pending.clear()
                    out.append(AudioEnd(session_id=self.session_id, turn_id=turn.turn_id))
                    break
                turn.seq, turn.index = turn.seq + 1, 0
            else:
                turn.index += 1
        return out
