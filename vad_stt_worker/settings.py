"""Settings of the VAD/STT worker (environment prefix ``VF_STT_``).

Read once in ``__main__`` and passed down; nothing below reads the environment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicefleet.settings import ServiceSettings

#: Phrases Whisper is known to invent on silence, breath and noise (from subtitle training data).
DEFAULT_BLOCKLIST = [
    "thank you",
    "thank you very much",
    "thanks for watching",
    "thank you for watching",
    "thanks for watching and see you next time",
    "please subscribe",
    "subscribe to my channel",
    "you",
    "bye",
    "bye bye",
    "so",
    "okay",
    "oh",
    "hmm",
    "uh",
    "um",
    "i'm sorry",
    "subtitles by the amara org community",
    "transcription by castingwords",
    "music",
    "applause",
    "silence",
]


class SttSettings(ServiceSettings):
    """Everything the worker can be told: models, endpointing, wake word, echo, sessions."""

    model_config = SettingsConfigDict(env_prefix="VF_STT_", env_file=".env", extra="ignore")

    # --- speech to text (faster-whisper) ---
    model: str = Field("", description="'' = packaged Whisper base; or a CTranslate2 Whisper folder; or a size name")
    model_en: str = Field(
        "tiny.en",
        description="Model for English sessions: 'tiny.en' = packaged Whisper tiny.en (2x faster than base); "
        "'' = VF_STT_MODEL for every language; or a CTranslate2 Whisper folder",
    )
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Where Whisper runs")
    compute_type: str = Field("", description="CTranslate2 compute type; '' = int8 on cpu, float16 on cuda")
    cpu_threads: int = Field(0, ge=0, description="Whisper CPU threads (0 = one per core)")
    encoder_window_s: float = Field(
        30.0, ge=5.0, le=30.0,
        description="Shortest Whisper encoder window in seconds: 30 = stock (most accurate); 10 is ~4x faster "
        "but costs tiny.en about 3 points of word error rate on real speech (README)",
    )
    language: str = Field("en", description="Language code, or '' / 'auto' to detect per utterance")
    partial_interval_ms: int = Field(1000, ge=0, description="A partial transcript per this much speech (0 = off)")
    no_speech_threshold: float = Field(0.6, ge=0, le=1, description="Drop a segment above this no-speech prob...")
    logprob_threshold: float = Field(-1.0, description="...when its average log-probability is below this")
    min_logprob: float = Field(-1.6, description="Drop a segment whose average log-probability is below this")
    min_voiced_ms: int = Field(220, ge=0, description="Utterances with less voiced audio are not transcribed")
    blocklist: list[str] = Field(
        default=list(DEFAULT_BLOCKLIST),
        description="Whisper's classic hallucinations, dropped unless clearly spoken (JSON list)",
    )

    # --- voice activity (Silero VAD) and end of turn ---
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Speech probability that starts speech")
    min_speech_ms: int = Field(200, ge=32, description="Speech this long before SpeechStarted")
    eot_mode: Literal["model", "silence"] = Field(
        "model", description="End of turn: 'model' = smart-turn v3 asked at each pause; 'silence' = a fixed silence"
    )
    endpoint_model: str = Field("", description="'' = packaged smart-turn v3 ONNX (pipecat-ai); or an ONNX file")
    endpoint_threshold: float = Field(0.5, gt=0, lt=1, description="smart-turn probability that means 'complete'")
    endpoint_after_ms: int = Field(96, ge=0, description="The model is asked after this much silence in a pause")
    eot_complete_ms: int = Field(200, ge=64, description="Silence that ends a turn the model calls complete")
    eot_incomplete_ms: int = Field(
        900, ge=100, description="Silence that ends a turn the model calls incomplete (pauses inside a sentence)"
    )
    eot_silence_ms: int = Field(450, ge=100, description="Silence that ends the user's turn (eot_mode=silence)")
    speculate_after_ms: int = Field(
        160, ge=0, description="Silence after which the final transcript is started speculatively"
    )
    pre_roll_ms: int = Field(300, ge=0, description="Audio kept before the detected start of speech")
    max_utterance_s: float = Field(25.0, gt=1, description="Longest utterance; then SpeechStopped(max_length)")

    # --- wake word (openWakeWord) ---
    wake_threshold: float = Field(0.5, gt=0, lt=1, description="Wake word score that fires")
    wake_cooldown_s: float = Field(2.0, ge=0, description="After firing, the wake word is ignored this long")
    follow_up_s: float = Field(8.0, ge=0, description="After a wake word or a turn, listen this long without it")
    fallback_wake_word: str = Field("hey_jarvis", description="Used when a session asks for an unknown wake word")

    # --- barge-in while the assistant speaks (echo guard) ---
    echo_vad_threshold: float = Field(0.85, gt=0, lt=1, description="Speech probability needed during playback")
    echo_min_speech_ms: int = Field(192, ge=32, description="Loud speech this long during playback to barge in...")
    echo_window_ms: int = Field(800, ge=64, description="...counted within this window")
    echo_margin_db: float = Field(6.0, description="...at least this many dB above the level of the echo")
    echo_tail_ms: int = Field(300, ge=0, description="Playback's echo lasts this long after PlaybackFinished")
    echo_warmup_ms: int = Field(500, ge=0, description="Playback heard before the echo level is known")
    # --- echo cancellation (WebRTC AEC3, the reply audio as reference; aec.py) ---
    aec: bool = Field(True, description="Cancel the reply's echo here unless the client says it does (start)")
    aec_offset_ms: float = Field(0.0, ge=0, description="Reference starts this long after PlaybackStarted")
    aec_vad_threshold: float = Field(0.5, gt=0, lt=1, description="Speech probability to barge in, echo cancelled")
    aec_margin_db: float = Field(6.0, description="...this many dB above the echo left after cancellation...")
    aec_min_speech_ms: int = Field(192, ge=32, description="...for this long (within echo_window_ms)")
    aec_near_db: float = Field(
        6.0, ge=0, description="Double talk: a chunk the canceller took at most this many dB from is the person..."
    )
    aec_erle_db: float = Field(20.0, ge=0, description="...once it removes at least this much of the echo (median)")
    aec_fast_speech_ms: int = Field(96, ge=32, description="...and such chunks barge in after this long")
    turn_busy_s: float = Field(20.0, ge=0, description="A turn counts as in progress this long until playback")

    # --- sessions across processes ---
    lease_ttl_ms: int = Field(3000, ge=500, description="Session ownership lease; takeover after it expires")
    scan_interval_s: float = Field(1.0, gt=0, description="How often unowned sessions are looked for")
    claim_delay_ms: int = Field(40, ge=0, description="Wait this much per owned session before claiming another")
    max_sessions: int = Field(0, ge=0, description="Sessions one process takes at most (0 = no limit)")
    session_stale_s: float = Field(120.0, gt=0, description="Sessions the gateway has not seen this long are left")
    analysis_threads: int = Field(2, ge=1, description="Threads running VAD and wake word for all sessions")
