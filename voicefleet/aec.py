"""Echo cancellation: the reply audio is the reference, WebRTC's AEC3 removes it from the microphone.

Used by the STT worker (the reference is the reply audio on the session's out
stream, ``AudioChunk`` at the client's output rate) and by the laptop client
(the reference is what its speaker callback just played). Resampled to 16 kHz
the reply is the far end of AEC3 (``livekit.rtc.AudioProcessingModule``), the
microphone the near end, both in 10 ms frames. The reference is played out in
step with the microphone: once playback started, every 10 ms of microphone
consumes 10 ms of queued reply audio (after a settable offset of silence);
AEC3's own delay estimator absorbs what remains (network, playback buffer,
the sound card). The reference may be added from another thread than the one
that processes the microphone.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np
import soxr

from .audio import BUS_RATE

FRAME = BUS_RATE // 100  # AEC3 works on 10 ms frames


class EchoCanceller:
    """AEC3 for one session: queue reply audio, clean microphone audio."""

    def __init__(self, offset_ms: float = 0.0, max_queued_ms: float = 0.0) -> None:
        from livekit import rtc  # imported here: only its users need the package (extras stt and mic)

        self._rtc: Any = rtc
        #: 0: unbounded (the worker queues a whole reply ahead); else the oldest reference beyond is dropped.
        self._max_queued = int(max_queued_ms * BUS_RATE / 1000)
        self._lock = threading.Lock()
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self._offset = int(offset_ms * BUS_RATE / 1000)
        self._queue: deque[tuple[str, np.ndarray]] = deque()  # (turn id, 16 kHz reply audio)
        self._queued = 0
        self._playing = False
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._mic = np.zeros(0, dtype=np.int16)  # leftover under one frame
        self.active = False  # any reference fed yet (before that AEC3 passes audio through)
        #: The microphone samples the last :meth:`process` returned cleaned, sample for sample (how much
        #: the canceller took out of each stretch tells the person's voice from the echo's rest).
        self.last_input = np.zeros(0, dtype=np.int16)

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
        if not pcm.size:
            return
        with self._lock:
            self._queue.append((turn_id, pcm.astype(np.int16, copy=False)))
            self._queued += pcm.size
            while self._max_queued and self._queued - self._queue[0][1].size >= self._max_queued:
                self._queued -= self._queue.popleft()[1].size

    def playback_started(self) -> None:
        """The client's speaker started: the queued reference starts now (after the offset)."""
        with self._lock:
            if not self._playing and self._offset:
                self._queue.appendleft(("", np.zeros(self._offset, dtype=np.int16)))
                self._queued += self._offset
            self._playing = True

    def playback_finished(self) -> None:
        self._playing = False

    def restart(self) -> None:
        """Forget the echo path: a fresh AEC3 (the speaker stopped early: a barge-in cut the reply short).

        AEC3 holds the reference in a delay line as long as the echo delay it
        estimated (the network, the client's playback buffer), so when the
        speaker stops, the last stretch it holds was never played: kept, AEC3
        goes on cancelling that echo for as long, from the words of the person
        who interrupted, and its suppressor ate whole words of them. A fresh
        one passes the microphone as it is until the next reply, which starts
        on a new filter as a session's first reply does.
        """
        self._apm = self._rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)

    def drop(self, turn_id: str) -> None:
        """The turn was cut (barge-in): the client drops what it had not played of it."""
        with self._lock:
            kept = [(tid, pcm) for tid, pcm in self._queue if tid != turn_id]
            self._queue = deque(kept)
            self._queued = sum(pcm.size for _, pcm in kept)

    def _take(self, n: int) -> np.ndarray | None:
        with self._lock:
            return self._take_locked(n)

    def _take_locked(self, n: int) -> np.ndarray | None:
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
        self.last_input = pending[:usable]
        return out
