"""Settings of different services that must agree, checked when a service starts.

Each service reads only its own settings, so a rule that ties two services'
settings together is invisible to either class's validators. Here each rule
names both settings by their class (``module:Class.field``); at start-up
(:func:`enforce`, called by every ``__main__``) the service's own settings
are compared with the other service's, read from the same environment and
``.env``. A broken rule stops the service with one sentence naming both
settings, before any model loads.

The classes are imported by name, when checked: the shared package keeps no
import of any service (the import graph stays a star around ``voicefleet``).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_settings import BaseSettings


@dataclass(frozen=True)
class Below:
    """Setting ``low`` must stay below setting ``high`` (each ``module:Class.field``)."""

    low: str
    high: str
    why: str


#: Every cross-service rule. Add one here when a README or a description says "keep X below Y".
RULES: tuple[Below, ...] = (
    Below(
        "tools_worker.settings:ToolsSettings.call_timeout_s",
        "llm_orchestrator.settings:LlmSettings.tool_timeout_s",
        "so that a slow tool is answered with an error before the orchestrator stops waiting for it",
    ),
    Below(
        "tools_worker.settings:ToolsSettings.call_timeout_s",
        "gateway.settings:GatewaySettings.mcp_tool_timeout_s",
        "so that a slow tool called over MCP is answered with an error before the gateway stops waiting for it",
    ),
    Below(
        "gateway.settings:GatewaySettings.resume_grace_s",
        "llm_orchestrator.settings:LlmSettings.history_ttl_s",
        "so that a resumed session still has its conversation",
    ),
    Below(
        "gateway.settings:GatewaySettings.resume_grace_s",
        "voicefleet.settings:BusSettings.out_stream_keep_s",
        "so that a resumed session can still replay what it missed",
    ),
)


class SettingsConflict(ValueError):
    """Two services' settings break a rule of :data:`RULES`; the message names both."""


def _split(ref: str) -> tuple[str, str, str]:
    module, _, rest = ref.partition(":")
    cls, _, field = rest.partition(".")
    return module, cls, field


def env_name(ref: str, settings_cls: type[BaseSettings]) -> str:
    """The environment variable of a setting, e.g. ``VF_TOOLS_CALL_TIMEOUT_S``."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return f"{prefix}{_split(ref)[2]}".upper()


def _settings_class(ref: str) -> type[BaseSettings]:
    module, cls, _ = _split(ref)
    found: type[BaseSettings] = getattr(importlib.import_module(module), cls)
    return found


def conflicts(own: BaseSettings) -> list[str]:
    """Sentences for each rule that ``own`` (one service's settings) breaks with another service's."""
    problems: list[str] = []
    cache: dict[type[BaseSettings], BaseSettings | None] = {type(own): own}
    for rule in RULES:
        classes = {ref: _settings_class(ref) for ref in (rule.low, rule.high)}
        if type(own) not in classes.values():
            continue
        values: dict[str, float] = {}
        for ref, cls in classes.items():
            if cls not in cache:
                try:
                    cache[cls] = cls()
                except ValidationError:
                    cache[cls] = None  # that service reports its own bad settings when it starts
            settings = cache[cls]
            if settings is not None:
                values[ref] = float(getattr(settings, _split(ref)[2]))
        if len(values) == 2 and not values[rule.low] < values[rule.high]:
            low, high = (env_name(ref, classes[ref]) for ref in (rule.low, rule.high))
            problems.append(
                f"{low} ({values[rule.low]:g}) must stay below {high} ({values[rule.high]:g}), {rule.why}."
            )
    return problems


def enforce(own: BaseSettings) -> None:
    """Raise :class:`SettingsConflict` when ``own`` breaks a cross-service rule (at a service's start)."""
    problems = conflicts(own)
    if problems:
        raise SettingsConflict(" ".join(problems))


def exit_on_conflict(own: BaseSettings) -> None:
    """For a ``__main__``: say what conflicts on stderr and exit with status 2."""
    try:
        enforce(own)
    except SettingsConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
