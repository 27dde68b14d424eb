"""Settings of the Wyoming adapter (environment prefix ``VF_WYOMING_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicefleet.settings import ServiceSettings


class WyomingSettings(ServiceSettings):
    """Where the three Wyoming servers listen, and how long they wait for the fleet."""

    model_config = SettingsConfigDict(env_prefix="VF_WYOMING_", env_file=".env", extra="ignore")

    # Home Assistant's usual ports; 0.0.0.0 to serve another machine (Wyoming has no authentication).
    asr_uri: str = Field("tcp://127.0.0.1:10300", description="Speech-to-text server ('' = off)")
    tts_uri: str = Field("tcp://127.0.0.1:10200", description="Text-to-speech server ('' = off)")
    wake_uri: str = Field("tcp://127.0.0.1:10400", description="Wake word server ('' = off)")
    transcribe_timeout_s: float = Field(60.0, gt=0, description="Longest wait for a transcript")
    tts_timeout_s: float = Field(30.0, gt=0, description="Longest wait for a whole synthesis")
    max_audio_s: float = Field(60.0, gt=0, description="Longest recording one transcription takes")
    wake_settle_s: float = Field(
        10.0, gt=0, description="After audio-stop, how long the STT worker may take to finish the wake word audio"
    )
    user: str = Field("wyoming", description="The user the fleet sees for Wyoming clients")
