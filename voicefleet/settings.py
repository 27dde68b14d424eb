"""Settings shared by every service, read from the environment and ``.env``.

Each service has its own settings class with its own prefix (``VF_GATEWAY_``,
``VF_STT_``...), built on :class:`ServiceSettings`; what all services agree on
(Redis, key prefix, logging) lives in :class:`BusSettings` under ``VF_``.
Settings are read once, in a service's ``__main__``, and passed down.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .keys import DEFAULT_PREFIX, Keys


class BusSettings(BaseSettings):
    """Redis connection, key prefix, health and logging (prefix ``VF_``)."""

    model_config = SettingsConfigDict(env_prefix="VF_", env_file=".env", extra="ignore")

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

    @property
    def keys(self) -> Keys:
        return Keys(self.key_prefix)


class ServiceSettings(BaseSettings):
    """Base of every service's settings: carries the :class:`BusSettings`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    bus: BusSettings = Field(default_factory=BusSettings)
    metrics_port: int = Field(0, description="Serve Prometheus metrics on this port (0: off)")
