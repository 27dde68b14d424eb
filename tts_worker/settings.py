"""Settings of the TTS worker (environment prefix ``VF_TTS_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from voicefleet.settings import ServiceSettings


class TtsSettings(ServiceSettings):
    """What the TTS worker reads from the environment, once, in ``__main__``."""

    model_config = SettingsConfigDict(env_prefix="VF_TTS_", env_file=".env", extra="ignore")

    default_voice: str = Field(
        "hibari",
        description="Voice used when a session names none: hibari (hibari-tts's en_US-hibari-heart, English), "
        "a Piper voice name from voices_dir, a path to an .onnx file, or empty for the packaged Piper "
        "en_US-joe-medium. A session in a language the default does not speak gets a loaded voice of its language",
    )
    hibari: bool = Field(
        True,
        description="Also load hibari-tts's packaged voice en_US-hibari-heart (English; its other voices "
        "download at run time and are never used)",
    )
    voices_dir: Path | None = Field(
        None, description="Folder of extra Piper voices: every *.onnx with its .onnx.json beside it"
    )
    concurrency: int = Field(2, ge=1, le=16, description="Sentences synthesized at once by this process")
    threads: int = Field(1, ge=1, le=64, description="ONNX Runtime threads per synthesis (Piper and hibari)")
    chunk_ms: int = Field(100, ge=10, le=2000, description="Longest audio piece sent on the bus, in milliseconds")
    max_chars_per_synthesis: int = Field(
        200, ge=20, description="Most characters synthesized in one go; longer text is split at sentences and clauses"
    )
    first_piece_chars: int = Field(
        60,
        ge=0,
        description="A turn's first sentence longer than this is cut at its first clause boundary, "
        "so the first audio leaves sooner (0: off)",
    )
    max_text_chars: int = Field(2000, ge=1, description="Longest text one request may carry; longer ones get an error")
    min_speech_rate: float = Field(0.5, gt=0, description="Slowest speaking rate a session may ask for")
    max_speech_rate: float = Field(2.0, gt=0, description="Fastest speaking rate a session may ask for")

    @model_validator(mode="after")
    def _rates_in_order(self) -> TtsSettings:
        if self.min_speech_rate > self.max_speech_rate:
            raise ValueError("min_speech_rate must not exceed max_speech_rate")
        return self
