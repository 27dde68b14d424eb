"""Server-side echo cancellation: the reply audio is the reference, WebRTC AEC3 removes it.

The session's out stream carries the reply audio the client plays
(``AudioChunk``, at the client's output rate). Resampled to 16 kHz it is the
far end of WebRTC's AEC3 (``livekit.rtc.AudioProcessingModule``), and the
microphone is the near end. Both go in 10 ms frames. The reference is played
out in step with the microphone: from the client's ``PlaybackStarted`` on,
every 10 ms of microphone consumes 10 ms of queued reply audio (plus a settable
offset of silence for the network and playback buffer); AEC3's own delay
estimator absorbs what remains (it searches up to about 500 ms).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import soxr

from voicefleet.audio import BUS_RATE

FRAME = BUS_RATE // 100  # AEC3 works on 10 ms frames


class EchoCanceller:
    """AEC3 for one session: queue reply audio, clean microphone audio."""

    def __init__(self, offset_ms: float = 0.0) -> None:
        from livekit import rtc  # imported here: only the worker and its tests pay for it

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self._offset = int(offset_ms * BUS_RATE / 1000)
        self._queue: deque[tuple[str, np.ndarray]] = deque()  # (turn id, 16 kHz reply audio)
        self._queued = 0
        self._playing = False
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._mic = np.zeros(0, dtype=np.int16)  # leftover under one frame
        self.active = False  # any reference fed yet (before that AEC3 passes audio through)

    @property
    def queued_ms(self) -> float:
        return self._queued * 1000 / BUS_RATE

    def add_reference(self, pcm: np.ndarray, rate: int, turn_id: str = "") -> None:
        """Reply audio (int16 mono at ``rate``) the client will play, in order."""
        if rate != BUS_RATE:
            stream = self._resamplers.get(rate)
            if stream is None:
                stream = self._resamplers[rate] = soxr.ResampleStream(rate, BUS_RATE, 1, dtype="int16")
            pcm = stream.resample_chunk(pcm)
        if pcm.size:
            self._queue.append((turn_id, pcm.astype(np.int16, copy=False)))
            self._queued += pcm.size

    def playback_started(self) -> None:
        """The client's speaker started: the queued reference starts now (after the offset)."""
        if not self._playing and self._offset:
            self._queue.appendleft(("", np.zeros(self._offset, dtype=np.int16)))
            self._queued += self._offset
        self._playing = True

    def playback_finished(self) -> None:
        self._playing = False

    def drop(self, turn_id: str) -> None:
        """The turn was cut (barge-in): the client drops what it had not played of it."""
        kept = [(tid, pcm) for tid, pcm in self._queue if tid != turn_id]
        self._queue = deque(kept)
        self._queued = sum(pcm.size for _, pcm in kept)

    def _take(self, n: int) -> np.ndarray | None:
        if not self._playing or not self._queued:
            return None
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and self._queue:
            tid, head = self._queue[0]
            take = min(n - filled, head.size)
            out[filled : filled + take] = head[:take]
            filled += take
            if take == head.size:
                self._queue.popleft()
            else:
                self._queue[0] = (tid, head[take:])
        self._queued -= filled
        return out

    def process(self, mic: np.ndarray) -> np.ndarray:
        """Cleaned microphone audio; keeps under 10 ms back until the next call."""
        pending = np.concatenate([self._mic, mic]) if self._mic.size else mic
        usable = pending.size - pending.size % FRAME
        out = np.empty(usable, dtype=np.int16)
        rtc = self._rtc
        for start in range(0, usable, FRAME):
            far = self._take(FRAME)
            if far is not None:
                self.active = True
            mic_frame = pending[start : start + FRAME]
            if not self.active:  # nothing played yet: the microphone as it is
                out[start : start + FRAME] = mic_frame
                continue
            # Once started, keep feeding (silence while nothing plays): the filter keeps what it learned.
            if far is None:
                far = np.zeros(FRAME, dtype=np.int16)
            self._apm.process_reverse_stream(rtc.AudioFrame(far.tobytes(), BUS_RATE, 1, FRAME))
            frame = rtc.AudioFrame(mic_frame.tobytes(), BUS_RATE, 1, FRAME)
            self._apm.process_stream(frame)  # in place
            out[start : start + FRAME] = np.frombuffer(frame.data, dtype=np.int16)
        self._mic = pending[usable:].copy()
        return out
