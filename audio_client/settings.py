"""Client settings (prefix ``VF_CLIENT_``), read once in ``__main__``.

Every setting can also be given on the command line; the command line wins.
The token is best kept in the environment (``VF_CLIENT_TOKEN``) or ``.env``,
where other users of the machine cannot read it from the process list.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClientSettings(BaseSettings):
    """How the laptop and headless clients reach the gateway and use audio."""

    model_config = SettingsConfigDict(env_prefix="VF_CLIENT_", env_file=".env", extra="ignore")

    gateway: str = Field("ws://127.0.0.1:8080", description="Gateway URL (ws://, wss://, http:// or https://)")
    token: SecretStr | None = Field(None, description="JWT for the gateway")

    # --- session ---
    wake_word: str | None = Field(None, description="Wake word; 'none' = always listening; unset = server default")
    voice: str | None = Field(None, description="TTS voice (one the server lists)")
    speech_rate: float = Field(1.0, gt=0.25, le=4.0, description="Reply speech rate")
    language: str | None = Field(None, description="Spoken language hint for the recognizer (e.g. 'en')")

    # --- audio ---
    frame_ms: int = Field(40, ge=20, le=100, description="Length of each microphone frame sent")
    input_device: str | None = Field(None, description="Microphone: device index or part of its name")
    output_device: str | None = Field(None, description="Speaker: device index or part of its name")
    tones: bool = Field(True, description="Short 'listening' and 'thinking' tones")
    tone_volume: float = Field(0.15, ge=0.0, le=1.0, description="Loudness of the tones (0-1)")
    prebuffer_ms: int = Field(80, ge=0, le=2000, description="Reply audio buffered before playback starts")
    echo_cancel: bool = Field(True, description="Remove the speaker's echo from the microphone (WebRTC AEC3)")
    half_duplex: bool = Field(False, description="Send silence instead of the microphone while a reply plays")

    # --- connection ---
    connect_timeout_s: float = Field(5.0, gt=0, description="Time allowed to connect and get 'ready'")
    reconnect_first_s: float = Field(0.5, gt=0, description="First wait before reconnecting")
    reconnect_max_s: float = Field(10.0, gt=0, description="Longest wait between reconnect attempts")

    # --- headless ---
    turn_timeout_s: float = Field(60.0, gt=0, description="Give up on a turn's reply after this long")
    trailing_silence_s: float = Field(1.5, ge=0, description="Silence appended to a WAV so the turn ends")

    log_level: str = Field("WARNING", description="Log level of the client's own diagnostics")
