"""Settings of the tools worker (prefix ``VF_TOOLS_``), read once in ``__main__``."""

from __future__ import annotations

import json
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from voicefleet.remote_tools import SERVER_NAME
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


class McpServer(BaseModel):
    """One MCP server, as in Claude Desktop's ``mcpServers`` (stdio ``command`` or HTTP ``url``) plus limits.

    ``timeout_s`` and ``max_result_chars`` default to ``VF_TOOLS_MCP_TIMEOUT_S`` and
    ``VF_TOOLS_MCP_MAX_RESULT_CHARS``; ``allow`` (when not empty) lists the only tools
    offered, ``deny`` tools never offered (the server's own names).
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["stdio", "http", "streamable-http", "streamableHttp"] | None = None
    command: str = ""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float | None = Field(None, gt=0)
    max_result_chars: int | None = Field(None, ge=40)
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if bool(self.command) == bool(self.url):
            raise ValueError("an MCP server needs either 'command' (stdio) or 'url' (streamable HTTP), not both")
        return self

    def offers(self, tool: str) -> bool:
        """Whether the allow and deny lists let ``tool`` through."""
        return (not self.allow or tool in self.allow) and tool not in self.deny


def read_mcp_servers(value: Any) -> Any:
    """``VF_TOOLS_MCP_SERVERS``: JSON, or the path of a JSON file (Claude Desktop's config file works)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        if not text.startswith("{"):
            path = Path(text).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"cannot read the MCP server file {path}: {exc.strerror}") from None
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"MCP servers: not valid JSON ({exc})") from None
    if isinstance(value, dict) and isinstance(value.get("mcpServers"), dict):
        value = value["mcpServers"]
    return value


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

    # --- MCP servers (their tools join the catalogue as mcp.<server>.<tool>) ---
    mcp_servers: Annotated[dict[str, McpServer], NoDecode] = Field(
        default_factory=dict,
        description='MCP servers as JSON, e.g. {"time": {"command": "mcp-server-time"}} or {"x": {"url": '
        '"https://host/mcp", "headers": {...}}}, or the path of a JSON file (Claude Desktop\'s mcpServers works)',
    )
    mcp_timeout_s: float = Field(
        2.5, gt=0, description="A call to an MCP server gives up after this long (keep below VF_TOOLS_CALL_TIMEOUT_S)"
    )
    mcp_max_result_chars: int = Field(2000, ge=40, description="An MCP tool's text result is cut to this length")
    mcp_relist_s: float = Field(
        30.0, ge=0, description="List each MCP server's tools again this often: finds a dead idle server and changes "
        "of servers that do not announce them (0: only on announcements)"
    )
    mcp_connect_timeout_s: float = Field(
        20.0, gt=0, description="Starting and greeting an MCP server may take this long"
    )

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _read_servers(cls, value: Any) -> Any:
        return read_mcp_servers(value)

    @field_validator("mcp_servers", mode="after")
    @classmethod
    def _server_names(cls, value: dict[str, McpServer]) -> dict[str, McpServer]:
        for name in value:
            if not SERVER_NAME.match(name):
                raise ValueError(f"MCP server name {name!r}: use lower-case letters, digits, '-' and '_' (32 at most)")
        return value

    @model_validator(mode="after")
    def _mcp_below_call_timeout(self) -> ToolsSettings:
        for name, server in self.mcp_servers.items():
            if self.mcp_call_timeout(server) >= self.call_timeout_s:
                raise ValueError(f"the timeout of MCP server {name!r} must stay below VF_TOOLS_CALL_TIMEOUT_S "
                                 f"({self.call_timeout_s} s), so that a slow server is answered with a sentence")
        return self

    def mcp_call_timeout(self, server: McpServer) -> float:
        return server.timeout_s or self.mcp_timeout_s

    def mcp_result_limit(self, server: McpServer) -> int:
        return server.max_result_chars or self.mcp_max_result_chars

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
