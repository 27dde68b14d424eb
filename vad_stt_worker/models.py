"""The models one worker process loads once: Whisper, the wake words, and the VAD factory."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from voicefleet.models import openwakeword_dir, smart_turn_onnx

from .endpoint import EndOfTurnModel
from .hallucinations import HallucinationFilter
from .settings import SttSettings
from .stt import SttEngine, build_engine
from .vad import VoiceActivity
from .wake import WakeModels

log = logging.getLogger(__name__)


@dataclass
class Models:
    """Everything heavy, shared by all sessions of the process."""

    engine: SttEngine
    wake: WakeModels
    filter: HallucinationFilter
    #: smart-turn v3 (None with VF_STT_EOT_MODE=silence).
    endpoint: EndOfTurnModel | None = None

    @classmethod
    def load(cls, settings: SttSettings, warm: bool = True) -> Models:
        """Load (and warm) every model; slow: call it off the event loop."""
        started = time.perf_counter()
        engine = build_engine(settings)
        wake = WakeModels(openwakeword_dir())
        VoiceActivity()  # fail now, not on the first session, if the VAD cannot load
        endpoint = None
        if settings.eot_mode == "model":
            endpoint = EndOfTurnModel(Path(settings.endpoint_model) if settings.endpoint_model else smart_turn_onnx())
        if warm:
            engine.warm()
            if endpoint is not None:
                endpoint.warm()
        log.info(
            "models loaded: whisper %s, wake words %s, end of turn %s",
            getattr(engine, "description", engine.name),
            ", ".join(wake.words),
            endpoint.description if endpoint else "by silence",
            extra={"ms": round((time.perf_counter() - started) * 1000)},
        )
        return cls(engine, wake, hallucination_filter(settings), endpoint)


def hallucination_filter(settings: SttSettings) -> HallucinationFilter:
    return HallucinationFilter.create(
        settings.blocklist,
        no_speech_threshold=settings.no_speech_threshold,
        logprob_threshold=settings.logprob_threshold,
        min_logprob=settings.min_logprob,
        min_voiced_ms=settings.min_voiced_ms,
    )
