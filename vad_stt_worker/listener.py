"""One session's audio analysis: frames of any size in, turn actions out.

Runs Silero VAD on 512-sample chunks and the wake word on 1280-sample frames,
feeding both to the :class:`~vad_stt_worker.turn.TurnDetector`. It is
synchronous and cheap (a few ms per 80 ms of audio): the worker calls
:meth:`Listener.feed` in a thread, once per batch of frames it read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from voicefleet.aec import EchoCanceller

from .audio import level_db
from .endpoint import EndOfTurnModel
from .turn import Action, TurnConfig, TurnDetector
from .vad import CHUNK_SAMPLES, VoiceActivity
from .wake import FRAME_SAMPLES, WakeDetector, WakeModels


@dataclass
class ListenerStats:
    """Time spent in each model, for the benchmark."""

    vad_chunks: int = 0
    vad_s: float = 0.0
    aec_s: float = 0.0
    wake_frames: int = 0
    wake_s: float = 0.0
    endpoint_calls: int = 0
    endpoint_s: float = 0.0


class Listener:
    """VAD + wake word + turn state for one audio stream."""

    def __init__(
        self,
        config: TurnConfig,
        wake_models: WakeModels,
        wake_word: str | None = None,
        endpoint: EndOfTurnModel | None = None,
        aec: EchoCanceller | None = None,
    ) -> None:
        self._wake_models = wake_models
        #: Cleans the microphone before anything listens to it (None: the input is used as it comes).
        self.aec = aec
        self._endpoint = endpoint
        # The model runs inside feed(), on the caller's thread (the worker's analysis pool).
        self.detector = TurnDetector(config, None, self._complete_probability if endpoint else None)
        self.vad = VoiceActivity()
        self._wake: WakeDetector | None = None
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_raw = np.zeros(0, dtype=np.int16)  # the same samples before echo cancellation
        self._wake_pending = np.zeros(0, dtype=np.int16)
        self.stats = ListenerStats()
        self.set_wake_word(wake_word)

    @property
    def position(self) -> int:
        """Samples of input analysed so far."""
        return self.detector.position

    @property
    def wake_word(self) -> str | None:
        return self.detector.wake_word

    def set_wake_word(self, word: str | None) -> None:
        """Listen for ``word`` (a bundled model name) or, with None, always."""
        if word is not None and word not in self._wake_models.words:
            raise KeyError(word)
        if word is not None and (self._wake is None or self._wake.word != word):
            self._wake = self._wake_models.detector(word)
            self._wake_pending = np.zeros(0, dtype=np.int16)
        elif word is None:
            self._wake = None
        self.detector.set_wake_word(word)

    def restart_aec(self) -> None:
        """A fresh echo canceller (``EchoCanceller.restart``), judged afresh."""
        if self.aec is not None:
            self.aec.restart()
            self.detector.echo.forget_erle()

    def set_playback(self, playing: bool) -> None:
        self.detector.set_playback(playing)

    def feed(self, samples: np.ndarray) -> list[Action]:
        """Analyse int16 mono 16 kHz samples (any length); return what the session must do."""
        raw: np.ndarray | None = None
        if self.aec is not None:
            started = time.perf_counter()
            samples = self.aec.process(samples)
            self.stats.aec_s += time.perf_counter() - started
            self.detector.echo_cancelled = self.aec.active
            raw = self.aec.last_input
            self._pending_raw = np.concatenate([self._pending_raw, raw]) if self._pending_raw.size else raw
        self._pending = np.concatenate([self._pending, samples]) if self._pending.size else samples
        actions: list[Action] = []
        usable = self._pending.size - self._pending.size % CHUNK_SAMPLES
        for offset in range(0, usable, CHUNK_SAMPLES):
            chunk = self._pending[offset : offset + CHUNK_SAMPLES]
            started = time.perf_counter()
            probability = self.vad.probability(chunk)
            self.stats.vad_s += time.perf_counter() - started
            self.stats.vad_chunks += 1
            # The microphone's level before cancellation: what the canceller took out (echo) or left (the person).
            raw_level = level_db(self._pending_raw[offset : offset + CHUNK_SAMPLES]) if raw is not None else None
            actions += self.detector.on_chunk(chunk, probability, raw_level)
            if self._wake is not None:
                actions += self._score_wake(chunk)
        self._pending = self._pending[usable:]
        if raw is not None:
            self._pending_raw = self._pending_raw[usable:]
        return actions

    def _complete_probability(self, audio: np.ndarray) -> float:
        assert self._endpoint is not None
        started = time.perf_counter()
        probability = self._endpoint.complete_probability(audio)
        self.stats.endpoint_s += time.perf_counter() - started
        self.stats.endpoint_calls += 1
        return probability

    def finish(self) -> list[Action]:
        """End of input: analyse the last partial chunk (padded) and close any open utterance."""
        actions: list[Action] = []
        if self._pending.size:
            actions += self.feed(np.zeros(CHUNK_SAMPLES - self._pending.size, dtype=np.int16))
        return actions + self.detector.finish()

    def _score_wake(self, chunk: np.ndarray) -> list[Action]:
        assert self._wake is not None
        self._wake_pending = np.concatenate([self._wake_pending, chunk])
        actions: list[Action] = []
        while self._wake_pending.size >= FRAME_SAMPLES:
            frame, self._wake_pending = (
                self._wake_pending[:FRAME_SAMPLES],
                self._wake_pending[FRAME_SAMPLES:],
            )
            started = time.perf_counter()
            score = self._wake.score(frame)
            self.stats.wake_s += time.perf_counter() - started
            self.stats.wake_frames += 1
            frame_end = self.position - self._wake_pending.size
            actions += self.detector.on_wake_score(self._wake.word, score, frame_end)
        return actions
