"""Settings shared by every service, read from the environment and ``.env``.

Each service has its own settings class with its own prefix (``VF_GATEWAY_``,
``VF_STT_``...), built on :class:`ServiceSettings`; what all services agree on
(Redis, key prefix, logging, tracing) lives in :class:`BusSettings` under ``VF_``.
Settings are read once, in a service's ``__main__``, and passed down.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .keys import DEFAULT_PREFIX, Keys


class BusSettings(BaseSettings):
    """Redis connection, key prefix, health, logging and tracing (prefix ``VF_``)."""

    # populate_by_name: the field names work in code as well as the environment names (aliases) below.
    model_config = SettingsConfigDict(env_prefix="VF_", env_file=".env", extra="ignore", populate_by_name=True)

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis to use; with VF_REDIS_SENTINELS only its database number, user and password count",
    )
    redis_sentinels: str = Field(
        "",
        description="Sentinel addresses host:port,host:port: ask them for the primary instead of VF_REDIS_URL's host",
    )
    redis_sentinel_master: str = Field("voicefleet", description="The primary's name in the Sentinel configuration")
    redis_wait_replicas: int = Field(
        0, ge=0, description="Replicas that must hold a tool's writes before its result is reported (WAIT); 0: off"
    )
    redis_wait_timeout_ms: int = Field(
        500, ge=1, description="Longest wait for VF_REDIS_WAIT_REPLICAS; the result is reported anyway after it"
    )
    redis_retry_s: float = Field(
        5.0, ge=0, description="Events, reply audio and queued work are retried this long while Redis is unreachable"
    )
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
    out_stream_keep_s: float = Field(
        120.0,
        gt=0,
        description="Seconds of events and reply audio kept in a session's out stream (what a resumed session "
        "can replay); older entries are trimmed while the session lives",
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
    drain_s: float = Field(
        20.0, ge=0, description="On SIGTERM, work in progress gets this long to finish before it is left to others"
    )

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_are_addresses(cls, value: str) -> str:
        _parse_addresses(value)
        return value

    @property
    def keys(self) -> Keys:
        return Keys(self.key_prefix)

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``VF_REDIS_SENTINELS`` as (host, port) pairs (port 26379 when left out)."""
        return _parse_addresses(self.redis_sentinels)


def _parse_addresses(value: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        if not host or not port.isdigit():
            raise ValueError(f"{item!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return out


class ServiceSettings(BaseSettings):
    """Base of every service's settings: carries the :class:`BusSettings`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    bus: BusSettings = Field(default_factory=BusSettings)
    metrics_port: int = Field(0, description="Serve Prometheus metrics on this port (0: off)")
