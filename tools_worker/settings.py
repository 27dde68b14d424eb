"""Settings of the tools worker (prefix ``VF_TOOLS_``), read once in ``__main__``."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from voicefleet.settings import ServiceSettings


def default_data_dir() -> Path:
    """``./data`` when run from a checkout that has one (run.sh makes it), else the XDG data folder."""
    local = Path("data")
    if local.is_dir():
        return local.resolve()
    return Path.home() / ".local" / "share" / "voicefleet"


#: The project's own drop folder for file search (``data/files/README.txt`` is committed).
PROJECT_FILES = Path(__file__).resolve().parent.parent / "data" / "files"


def default_search_dirs() -> list[Path]:
    """The user's Documents folder when there is one, plus the project's ``data/files/``."""
    documents = Path.home() / "Documents"
    return [d for d in (documents, PROJECT_FILES) if d.is_dir()]


class ToolsSettings(ServiceSettings):
    """Where the tools keep data, which folders file search covers, web and timer limits."""

    model_config = SettingsConfigDict(env_prefix="VF_TOOLS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="SQLite databases live here")
    concurrency: int = Field(4, ge=1, description="Tool calls handled at once by one process")
    call_timeout_s: float = Field(
        3.5, gt=0, description="A call gets an error answer after this long (keep below VF_LLM_TOOL_TIMEOUT_S)"
    )

    # --- file search ---
    search_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=default_search_dirs,
        description="Comma-separated folders that file search covers (unset: ~/Documents and data/files; '' = off)",
    )
    reindex_every_s: float = Field(
        300.0, ge=0, description="Look for changed files this often in the background (0: only at start)"
    )
    index_on_start: bool = Field(True, description="Look for changed files as soon as the worker starts")
    max_file_mb: float = Field(20.0, gt=0, description="Larger files are not indexed")
    chunk_tokens: int = Field(200, ge=32, description="Size of one indexed passage")
    embed_threads: int = Field(0, ge=0, description="onnxruntime threads for embeddings (0: its default)")

    # --- web search ---
    web_provider: Literal["auto", "ddgs", "searxng", "off"] = Field(
        "auto", description="ddgs (no key, needs internet), searxng (self-hosted), off; auto: searxng when"
        " VF_TOOLS_SEARXNG_URL is set, else ddgs"
    )
    searxng_url: str = Field("", description="Self-hosted SearxNG base URL, e.g. http://127.0.0.1:8888")
    web_timeout_s: float = Field(3.0, gt=0, description="A web search gives up after this long")
    web_max_results: int = Field(5, ge=1, le=20)

    # --- time and timers ---
    timezone: str = Field("", description="IANA zone for time.now, e.g. Europe/Paris ('' = system)")
    max_timer_s: float = Field(24 * 3600.0, gt=0)
    max_timers_per_user: int = Field(20, ge=1)
    timer_poll_s: float = Field(0.25, gt=0, description="How often due timers are looked for")

    @field_validator("search_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [Path(part.strip()).expanduser() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _searxng_needs_a_url(self) -> ToolsSettings:
        if self.web_provider == "searxng" and not self.searxng_url:
            raise ValueError("VF_TOOLS_WEB_PROVIDER=searxng needs VF_TOOLS_SEARXNG_URL")
        return self

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Paris)") from exc
        return value

    @property
    def notes_db(self) -> Path:
        return self.data_dir / "tools.sqlite"

    @property
    def index_db(self) -> Path:
        return self.data_dir / "file_index.sqlite"
