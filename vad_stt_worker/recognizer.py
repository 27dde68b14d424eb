"""From utterance audio to the text the user said, on one dedicated thread.

:class:`Recognizer` is the synchronous path (engine, hallucination filter,
wake word removal) shared by the worker, the ``transcribe`` command and the
benchmark. :class:`Transcriber` runs it on the process's single Whisper
thread: Whisper already uses every core, so two at once would only make both
slower. Partial transcripts are skipped while that thread is busy, so they
never queue in front of a final one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .audio import to_float
from .hallucinations import HallucinationFilter
from .stt import SttEngine, Transcript
from .wake import strip_wake_word


@dataclass
class Recognition:
    """The cleaned text of one utterance and how it was obtained."""

    text: str
    transcript: Transcript = field(default_factory=Transcript)
    skipped: bool = False  # too little voiced audio: the engine was not run
    finished_at: float = 0.0  # wall clock


class Recognizer:
    """Engine + filter: the one way audio becomes text."""

    def __init__(self, engine: SttEngine, hallucinations: HallucinationFilter) -> None:
        self.engine = engine
        self.hallucinations = hallucinations

    def recognize(
        self, audio: np.ndarray, language: str | None, voiced_ms: float, wake_word: str | None = None
    ) -> Recognition:
        """``audio``: int16 mono 16 kHz."""
        if not self.hallucinations.worth_transcribing(voiced_ms) or audio.size == 0:
            return Recognition("", skipped=True, finished_at=time.time())
        transcript = self.engine.transcribe(to_float(audio), language)
        text = strip_wake_word(self.hallucinations.clean(transcript, voiced_ms), wake_word)
        return Recognition(text, transcript, finished_at=time.time())


@dataclass
class Job:
    """One queued transcription: await ``future``; ``drop()`` it if no longer wanted."""

    future: asyncio.Future[Any]
    _job: Future[Any]

    def drop(self) -> bool:
        """Cancel it if it has not started yet; True when it will never run."""
        return self._job.cancel()


class Transcriber:
    """The process's Whisper thread, shared by every session."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        self._in_flight = 0
        #: Typical inference time (moving average), to skip partials the machine cannot afford.
        self.typical_s = 0.0

    @property
    def busy(self) -> bool:
        return self._in_flight > 0

    def submit(self, audio: np.ndarray, language: str | None, voiced_ms: float, wake_word: str | None) -> Job:
        """Queue a transcription (call from the event loop)."""
        return self.run(self.recognizer.recognize, audio, language, voiced_ms, wake_word)

    def run(self, fn: Callable[..., Any], *args: Any) -> Job:
        """Queue any work that uses Whisper (a whole recording) on the Whisper thread."""
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        job = self._pool.submit(fn, *args)
        # Counted until the thread is really free (a dropped-but-running job still occupies it).
        job.add_done_callback(lambda done: self._release(loop, done))
        return Job(asyncio.wrap_future(job, loop=loop), job)

    def try_partial(
        self,
        audio: np.ndarray,
        language: str | None,
        voiced_ms: float,
        wake_word: str | None,
        budget_s: float,
    ) -> Job | None:
        """Like :meth:`submit`, but only when the thread is idle and a run typically takes < ``budget_s``.

        A partial that is still running when the user stops talking delays the
        final transcript; on a machine too slow for partials, skip them all.
        """
        if self.busy or self.typical_s > budget_s:
            return None
        return self.submit(audio, language, voiced_ms, wake_word)

    def _release(self, loop: asyncio.AbstractEventLoop, job: Future[Any]) -> None:
        elapsed = 0.0
        if not job.cancelled() and job.exception() is None and isinstance(job.result(), Recognition):
            elapsed = job.result().transcript.elapsed_s
        try:
            loop.call_soon_threadsafe(self._done, elapsed)
        except RuntimeError:  # the loop closed meanwhile (process stopping)
            pass

    def _done(self, elapsed_s: float) -> None:
        self._in_flight -= 1
        if elapsed_s > 0:
            self.typical_s = elapsed_s if self.typical_s == 0 else 0.7 * self.typical_s + 0.3 * elapsed_s

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
