"""Where a new owner must start reading a session's audio so that nothing said is lost.

The owner of a session writes a position marker into the session hash
(field ``stt_pos``)::

    "<last entry id> <samples> <resume entry id> <resume samples> <awake>"

The first two fields are where the owner has read to (the audio position,
counted in samples since the session began). The last three say where a new
owner should start reading instead: just after ``<resume entry id>``, at
``<resume samples>``, which is the start (with its pre-roll) of the earliest
utterance whose turn is not yet handed on, or a pre-roll before the read
position when nobody is speaking. ``awake`` is 1 when the session had heard its
wake word, so the replayed audio does not need it again.

A new owner re-reads that audio (faster than real time: it is already in the
stream) and the utterance in progress becomes a turn as if nothing happened.
An utterance whose turn was handed on is never replayed: the marker moves
past it as soon as the turn is enqueued, before its final transcript is shown
(:meth:`ReplayTracker.handed_on`, then the owner's ``mark_position``), so a
worker killed after a client saw a transcript never makes a new owner say it
again. Only a crash between enqueueing the turn and writing the marker (one
Redis round trip) can still repeat a turn; none can lose one.
Markers of the older two-field form have no resume point: read from the end.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .turn import Action, Final, SpeechStart, TurnDetector, samples

#: Frames remembered for mapping a sample position back to a stream entry: those since the resume point
#: (trimmed at every marker), bounded in case (over 3 minutes of 10 ms frames).
MAX_FRAMES = 20_000


@dataclass(frozen=True)
class Marker:
    """A parsed ``stt_pos`` value (see the module docstring)."""

    read_id: str = ""
    read_pos: int = 0
    resume_id: str = ""  # empty: an old marker without a resume point
    resume_pos: int = 0
    awake: bool = False

    @classmethod
    def parse(cls, raw: str) -> Marker:
        parts = raw.split()
        number = [int(p) if p.isdigit() else 0 for p in parts]
        if len(parts) >= 5:
            return cls(parts[0], number[1], parts[2], number[3], parts[4] == "1")
        if len(parts) >= 2:
            return cls(parts[0], number[1])
        return cls(parts[0] if parts else "")

    def __str__(self) -> str:
        return f"{self.read_id} {self.read_pos} {self.resume_id} {self.resume_pos} {int(self.awake)}"


def id_after(a: str, b: str) -> bool:
    """Stream entry id ``a`` is later than ``b``."""

    def key(value: str) -> tuple[int, int]:
        ms, _, seq = value.partition("-")
        return int(ms or 0), int(seq or 0)

    return key(a) > key(b)


class ReplayTracker:
    """Follows one runner's reading and turns, and tells where a new owner would resume.

    Positions are samples of the runner's own input (0 = its first frame); the
    runner adds its start position when it writes the marker.
    """

    def __init__(self, start_id: bytes, start_position: int) -> None:
        # (id of the entry before the frame, samples before the frame), oldest first
        self._frames: deque[tuple[str, int]] = deque(maxlen=MAX_FRAMES)
        self._start_id = start_id.decode()
        self._base = start_position
        self._starts: dict[int, int] = {}  # utterance -> first sample of its audio
        self._pending: dict[int, int] = {}  # utterance whose turn is not handed on yet -> first sample
        self._done_to = 0  # end of speech of the last utterance whose turn was handed on
        #: Called when a turn was given up on (no turn handed on): the owner writes the marker at once.
        self.on_settled: Callable[[], None] | None = None

    def frame(self, before_id: bytes, samples_before: int) -> None:
        """An audio frame was read; the entry before it is ``before_id``."""
        self._frames.append((before_id.decode(), samples_before))

    def on_action(self, action: Action, detector: TurnDetector) -> None:
        if not isinstance(action, SpeechStart):
            return
        u = detector.utterance
        if u is not None and u.number == action.utterance:
            start = u.audio_start
        else:  # already ended within the same batch
            start = max(action.position - samples(detector.config.pre_roll_ms), 0)
        if action.continues in self._starts:
            start = min(start, self._starts[action.continues])
        self._starts[action.utterance] = start
        for old in [n for n in self._starts if n < action.utterance - 8]:
            del self._starts[old]

    def track(self, final: Final, task: asyncio.Task[Any]) -> None:
        """``task`` transcribes the utterance and hands its turn on; replayable until it finishes."""
        utterance = final.utterance
        self._pending[utterance] = self._starts.get(utterance, 0)

        def settled(done: asyncio.Task[Any]) -> None:
            if done.cancelled():  # the runner stopped: the turn was not handed on, a new owner redoes it
                return
            # A turn handed on was marked then (the owner's mark_position); a turn given up on is marked now.
            if self.handed_on(final) and self.on_settled is not None:
                self.on_settled()

        task.add_done_callback(settled)

    def handed_on(self, final: Final) -> bool:
        """``final``'s turn was enqueued (or given up on): a new owner must not replay it; False if told already."""
        self._done_to = max(self._done_to, final.speech_end)
        return self._pending.pop(final.utterance, None) is not None

    def marker(self, last_id: bytes, read: int, detector: TurnDetector) -> str:
        """The ``stt_pos`` value for a runner that has read ``read`` samples, up to entry ``last_id``."""
        resume_id, resume_at = self.resume(detector, read)
        awake = detector.wake_word is not None and not detector.gated
        return str(Marker(last_id.decode(), self._base + read, resume_id, self._base + resume_at, awake))

    def resume(self, detector: TurnDetector, read: int) -> tuple[str, int]:
        """(entry id to read after, samples before it): the earliest audio not yet turned into a turn."""
        u = detector.utterance
        if u is not None:
            needed = u.audio_start
        else:
            # The detector keeps an utterance ended on the end-of-turn model's word (it may go on): once its
            # turn is handed on, a new owner must not hear it again.
            needed = max(detector.history.start, self._done_to)
        needed = min([needed, read, *self._pending.values()])
        frames = self._frames
        while len(frames) > 1 and frames[1][1] <= needed:  # frames start in order; the earlier ones are done
            frames.popleft()
        return frames[0] if frames else (self._start_id, 0)
