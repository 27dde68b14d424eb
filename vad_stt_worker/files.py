"""Whole recordings: :class:`TranscribeRequest` from the ``transcribe`` stream, answered segment by segment.

The HTTP ``/v1/audio/transcriptions`` route and the Wyoming ``asr`` server
send a recording here instead of running a Whisper of their own. It is
decoded on the process's one Whisper thread, one window at a time (a live
session's transcription waits for at most one window, not for the whole
recording), and every segment is pushed to the request's reply list as soon
as Whisper has it, so a streaming client sees the text grow. A cancel keyed
by the request id (the caller gave up) stops it between segments.
"""

from __future__ import annotations

import logging
import threading
import time

from voicefleet.bus import Bus
from voicefleet.messages import Error, TranscribeRequest, TranscriptDone, TranscriptSegment, WordTiming

from .audio import from_bytes, to_float
from .recognizer import Transcriber
from .stt import FileSegment, normalize_language

log = logging.getLogger(__name__)

class FileTranscriber:
    """Answers transcription requests with the worker's engine, on its Whisper thread."""

    def __init__(self, bus: Bus, transcriber: Transcriber, default_language: str) -> None:
        self.bus = bus
        self.transcriber = transcriber
        self.default_language = default_language
        self._stops: dict[str, threading.Event] = {}

    def cancel(self, request_id: str) -> None:
        """The caller gave up on ``request_id``: stop after the segment being decoded."""
        stop = self._stops.get(request_id)
        if stop is not None:
            stop.set()

    async def handle(self, msg: TranscribeRequest) -> None:
        if await self.bus.is_cancelled(msg.session_id, msg.request_id):
            log.info("transcription %s was given up before it started", msg.request_id)
            return
        language = normalize_language(self.default_language if msg.language is None else msg.language)
        stop = self._stops[msg.request_id] = threading.Event()
        started = time.monotonic()
        engine = self.transcriber.recognizer.engine
        try:
            # One job per step on the Whisper thread (features and language first, then one 30 s window
            # at a time): the live sessions' transcriptions queued meanwhile run between the windows.
            result = await self.transcriber.run(
                engine.transcribe_file, to_float(from_bytes(msg.audio)), language, msg.prompt, msg.words
            ).future
            texts: list[str] = []
            seq = 0
            while not stop.is_set():
                segment: FileSegment | None = await self.transcriber.run(next, result.segments, None).future
                if segment is None:
                    break
                await self.bus.reply(msg.request_id, _segment(seq, segment))
                texts.append(segment.text.strip())
                seq += 1
        except Exception:
            log.exception("transcription %s failed", msg.request_id)
            failed = Error(code="stt_failed", message="The recording could not be transcribed.")
            await self.bus.reply(msg.request_id, failed)
            return
        finally:
            self._stops.pop(msg.request_id, None)
        if stop.is_set():
            log.info("transcription %s cancelled", msg.request_id)
            return
        done = TranscriptDone(text=" ".join(t for t in texts if t), language=result.language,
                              duration=round(result.duration, 3), model=result.model)
        await self.bus.reply(msg.request_id, done)
        log.info(
            "transcribed a %.1f s recording (%s): %d segments", done.duration, done.language, seq,
            extra={"ms": round((time.monotonic() - started) * 1000)},
        )  # fmt: skip


def _segment(seq: int, segment: FileSegment) -> TranscriptSegment:
    return TranscriptSegment(
        seq=seq, text=segment.text, start=segment.start, end=segment.end,
        words=[WordTiming(word=w, start=s, end=e, probability=p) for w, s, e, p in segment.words],
        avg_logprob=segment.avg_logprob, no_speech_prob=segment.no_speech_prob,
        compression_ratio=segment.compression_ratio, temperature=segment.temperature,
    )  # fmt: skip
