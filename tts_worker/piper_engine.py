"""Piper voices (ONNX Runtime) behind :class:`~tts_worker.engine.SpeechEngine`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import numpy as np
import onnxruntime  # type: ignore[import-untyped]
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from .engine import SpeechEngine
from .voices import VoiceInfo

log = logging.getLogger(__name__)


class PiperEngine(SpeechEngine):
    """One Piper voice; its ONNX session is shared by all threads (``run`` is thread-safe)."""

    def __init__(self, voice: PiperVoice, name: str) -> None:
        self.voice = voice
        self.name = name
        self.sample_rate = int(voice.config.sample_rate)
        self._base_length_scale = float(voice.config.length_scale or 1.0)

    @classmethod
    def load(cls, info: VoiceInfo, threads: int = 1) -> PiperEngine:
        """Load a voice with a bounded thread count.

        ``PiperVoice.load`` gives ONNX Runtime every core; several syntheses at
        once (and the LLM on the same machine) then fight over them, so the
        session is built here with ``threads`` intra-op threads instead.
        """
        with open(f"{info.model_path}.json", encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(info.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return cls(PiperVoice(session=session, config=config), info.name)

    def synthesize(self, text: str, speech_rate: float = 1.0) -> Iterator[np.ndarray]:
        config = SynthesisConfig(length_scale=self._base_length_scale / speech_rate)
        for chunk in self.voice.synthesize(text, syn_config=config):
            yield chunk.audio_int16_array
