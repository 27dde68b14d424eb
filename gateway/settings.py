"""Gateway settings (prefix ``VF_GATEWAY_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from voicefleet.audio import MAX_RATE, MIN_RATE
from voicefleet.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """HTTP/WebSocket front door: auth, limits, routing."""

    model_config = SettingsConfigDict(env_prefix="VF_GATEWAY_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080

    # --- auth (JWT) ---
    jwt_algorithm: str = Field("HS256", description="HS256 (shared secret) or RS256 (public key)")
    jwt_secret: SecretStr | None = Field(None, description="HS256 secret; never baked into code")
    jwt_public_key: Path | None = Field(None, description="PEM public key file for RS256")
    jwt_private_key: Path | None = Field(None, description="PEM private key for minting RS256 tokens")
    jwt_audience: str = "voicefleet"
    jwt_issuer: str = "voicefleet"
    jwt_leeway_s: int = 10
    jwt_max_lifetime_s: int = Field(
        7 * 86400, gt=0, description="Longest token lifetime accepted (exp - iat); longer tokens are refused"
    )
    dev_signin: bool = Field(False, description="Let the page mint a token for any name (development only)")

    # --- limits ---
    max_frame_bytes: int = Field(32000, gt=0, description="Largest binary frame (1 s of 16 kHz PCM16)")
    max_text_chars: int = Field(2000, gt=0, description="Largest typed text message")
    max_session_s: float = Field(3600.0, gt=0, description="Longest session")
    idle_timeout_s: float = Field(120.0, gt=0, description="Close a connection silent this long")
    start_timeout_s: float = Field(10.0, gt=0, description="Time allowed for the first message")
    send_timeout_s: float = Field(
        15.0, gt=0,
        description="A client that takes no data for this long (it stopped reading) is treated as gone; "
                    "its session waits for a resume",
    )
    max_connections_per_user: int = Field(4, gt=0)
    resume_grace_s: float = Field(
        30.0, ge=0, description="How long a dropped client may resume its session (0: sessions end with the connection)"
    )
    max_frames_per_s: float = Field(100.0, gt=0, description="Sustained frame rate allowed per connection")
    max_audio_speed: float = Field(
        1.5, gt=0, description="Seconds of audio a client may send per second of wall time (counted at its own rate)"
    )
    audio_burst_s: float = Field(2.0, gt=0, description="Seconds of audio a client may send ahead of real time")
    max_text_messages_per_s: float = Field(20.0, gt=0, description="JSON messages per second (bursts of as many)")
    max_text_bytes_per_s: int = Field(
        32768, gt=0, description="Bytes of JSON messages per second (bursts of as many)"
    )
    max_json_depth: int = Field(16, ge=2, le=64, description="Deepest nesting accepted in a client's JSON")
    min_sample_rate: int = Field(MIN_RATE, ge=MIN_RATE, description="Lowest client sample rate accepted (Hz)")
    max_sample_rate: int = Field(MAX_RATE, le=MAX_RATE, description="Highest client sample rate accepted (Hz)")

    # --- HTTP front door ---
    max_body_bytes: int = Field(65536, gt=0, description="Largest HTTP request body, refused before authentication")
    public_url: str = Field("", description="The URL clients use (e.g. https://voice.example.org): its host is allowed")
    allowed_hosts: str = Field(
        "", description="More Host names to answer for, comma-separated ('*': any); localhost is always allowed"
    )
    allowed_origins: str = Field(
        "", description="More web origins allowed to open the WebSocket, comma-separated (same-origin always is)"
    )
    operator_token: SecretStr | None = Field(
        None, description="Bearer token for /v1/health details and /metrics (unset: no details, /metrics open)"
    )

    # --- MCP server (/mcp) ---
    mcp_server: bool = Field(True, description="Offer the assistant's own tools to MCP clients at /mcp (JWT)")
    mcp_tool_timeout_s: float = Field(
        10.0, gt=0, description="An MCP call waits this long for the tools worker (keep above VF_TOOLS_CALL_TIMEOUT_S)"
    )

    # --- fleet ---
    bus_retry_s: float = Field(
        5.0, ge=0, description="Typed text waits this long for Redis (a failover to a replica) before it is refused"
    )
    required_services: str = Field("stt,llm,tts,tools", description="Services /v1/health waits for")
    default_wake_word: str = Field("", description="Wake word for new sessions ('' = always listening)")
    tts_max_concurrent: int = Field(4, gt=0, description="POST /v1/tts requests at once")
    tts_max_per_user: int = Field(2, gt=0, description="POST /v1/tts requests at once for one user")
    tts_timeout_s: float = Field(30.0, gt=0)
    queue_metrics_s: float = Field(
        5.0, ge=0, description="Read the work streams' lag and pending counts for /metrics this often (0: off)"
    )

    # --- OpenAI-compatible API (/v1/audio/*, /v1/chat/completions); /v1/audio/speech shares the TTS slots ---
    max_upload_bytes: int = Field(
        25 * 1024 * 1024, gt=0, description="Largest audio upload to /v1/audio/transcriptions (OpenAI's is 25 MB)"
    )
    max_upload_s: float = Field(300.0, gt=0, description="Longest recording /v1/audio/transcriptions accepts")
    transcribe_max_concurrent: int = Field(4, gt=0, description="Transcriptions at once per gateway; more get 429")
    transcribe_max_per_user: int = Field(2, gt=0, description="Transcriptions at once for one user; more get 429")
    transcribe_timeout_s: float = Field(120.0, gt=0, description="Longest wait for a whole transcription")
    chat_max_concurrent: int = Field(8, gt=0, description="Chat completions at once per gateway; more get 429")
    chat_max_per_user: int = Field(2, gt=0, description="Chat completions at once for one user; more get 429")
    chat_timeout_s: float = Field(120.0, gt=0, description="Longest wait for a whole chat reply")

    @model_validator(mode="after")
    def _check_keys(self) -> GatewaySettings:
        if self.jwt_algorithm not in ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512"):
            raise ValueError(f"unsupported jwt_algorithm {self.jwt_algorithm!r}")
        return self

    @property
    def required(self) -> list[str]:
        return [s.strip() for s in self.required_services.split(",") if s.strip()]
