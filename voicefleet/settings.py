"""Settings shared by every service, read from the environment and ``.env``.

Each service has its own settings class with its own prefix (``VF_GATEWAY_``,
``VF_STT_``...), built on :class:`ServiceSettings`; what all services agree on
(Redis, key prefix, logging, tracing) lives in :class:`BusSettings` under ``VF_``.
Settings are read once, in a service's ``__main__``, and passed down.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .keys import DEFAULT_PREFIX, Keys


class BusSettings(BaseSettings):
    """Redis connection, key prefix, health, logging and tracing (prefix ``VF_``)."""

    # populate_by_name: the field names work in code as well as the environment names (aliases) below.
    model_config = SettingsConfigDict(env_prefix="VF_", env_file=".env", extra="ignore", populate_by_name=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = DEFAULT_PREFIX
    health_ttl_s: float = Field(5.0, gt=0, description="A worker silent this long is gone")
    log_level: str = "INFO"
    log_json: bool = False
    #: Entries held this long by a consumer that still looks alive are reclaimed anyway.
    reclaim_idle_s: float = Field(
        60.0, gt=0, description="Work unacked this long is claimed by another worker (a hung handler)"
    )
    #: A worker keeps claiming what its handlers are still working on, this long at most.
    handler_max_s: float = Field(
        600.0,
        gt=0,
        description="A worker vouches for work its handler is still on this long at most; after it, the "
        "work counts as hung and is reclaimed (slow work on a busy machine is not taken away before)",
    )
    work_stream_maxlen: int = Field(
        10000, ge=100, description="Entries kept in each work stream (turns, speak, tools), trimmed approximately"
    )
    # Tracing (voicefleet.tracing): off unless one of the two is set.
    trace_otlp_endpoint: str = Field(
        "",
        validation_alias=AliasChoices("VF_TRACE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="Send spans over OTLP/HTTP to this base URL, e.g. http://127.0.0.1:4318 "
        "(or the standard OTEL_EXPORTER_OTLP_ENDPOINT); empty: not exported",
    )
    trace_file: str = Field("", description="Also write spans to this file as JSON lines (tests, debugging)")
    trace_sample_ratio: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of turns traced (the first service of a turn decides for all)"
    )

    @property
    def keys(self) -> Keys:
        return Keys(self.key_prefix)


class ServiceSettings(BaseSettings):
    """Base of every service's settings: carries the :class:`BusSettings`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    bus: BusSettings = Field(default_factory=BusSettings)
    metrics_port: int = Field(0, description="Serve Prometheus metrics on this port (0: off)")
