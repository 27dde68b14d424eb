"""The models one worker process loads once: Whisper, the wake words, and the VAD factory."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from voicefleet.models import openwakeword_dir

from .hallucinations import HallucinationFilter
from .settings import SttSettings
from .stt import SttEngine, WhisperEngine
from .vad import VoiceActivity
from .wake import WakeModels

log = logging.getLogger(__name__)


@dataclass
class Models:
    """Everything heavy, shared by all sessions of the process."""

    engine: SttEngine
    wake: WakeModels
    filter: HallucinationFilter

    @classmethod
    def load(cls, settings: SttSettings, warm: bool = True) -> Models:
        """Load (and warm) every model; slow: call it off the event loop."""
        started = time.perf_counter()
        engine = WhisperEngine.from_settings(settings)
        wake = WakeModels(openwakeword_dir())
        VoiceActivity()  # fail now, not on the first session, if the VAD cannot load
        if warm:
            engine.warm()
        log.info(
            "models loaded: whisper %s, wake words %s",
            getattr(engine, "description", engine.name),
            ", ".join(wake.words),
            extra={"ms": round((time.perf_counter() - started) * 1000)},
        )
        return cls(engine, wake, hallucination_filter(settings))


def hallucination_filter(settings: SttSettings) -> HallucinationFilter:
    return HallucinationFilter.create(
        settings.blocklist,
        no_speech_threshold=settings.no_speech_threshold,
        logprob_threshold=settings.logprob_threshold,
        min_logprob=settings.min_logprob,
        min_voiced_ms=settings.min_voiced_ms,
    )
