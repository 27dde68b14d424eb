"""Tool names, their arguments, and dispatch of one call to its handler.

Each tool is a :class:`Tool`: a name the orchestrator uses (``notes.add``), a
pydantic model of its arguments, and an async handler returning an
:class:`Outcome`. Bad arguments and unknown names become a refusal with a
sentence, never an exception. Tools that change something (``mutates``) keep
their answer per ``call_id``, so a call redelivered after a worker died gets the
same answer instead of doing it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from voicefleet.messages import ToolCall, ToolResult

from . import records
from .store import Database

log = logging.getLogger(__name__)


class ToolArgs(BaseModel):
    """Base of every tool's arguments: lenient about extras, strips whitespace."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


@dataclass
class Outcome:
    """What a handler produced: ``text`` is one or two sentences to speak."""

    ok: bool
    text: str
    data: Any = None


class ToolError(Exception):
    """A refusal the user should hear (``str()`` is the sentence); ``data`` goes along."""

    def __init__(self, text: str, data: Any = None) -> None:
        super().__init__(text)
        self.data = data


Handler = Callable[[ToolCall, Any], Awaitable[Outcome]]


@dataclass(frozen=True)
class Tool:
    """One tool the assistant can call."""

    name: str
    summary: str
    args: type[ToolArgs]
    run: Handler
    per_user: bool = True
    mutates: bool = False


@dataclass
class Registry:
    """Tool name -> :class:`Tool`, with argument checks and the per-call answer log."""

    tools: dict[str, Tool] = field(default_factory=dict)
    db: Database | None = None  # where answers of mutating calls are kept

    @classmethod
    def of(cls, tools: Iterable[Tool], db: Database | None = None) -> Registry:
        return cls({t.name: t for t in tools}, db)

    async def dispatch(self, call: ToolCall) -> ToolResult:
        """Run one call; always returns a result (``ok=False`` with a sentence on refusal)."""
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools))
            return _result(call, Outcome(False, f"I don't have a tool called {call.name!r}.", {"tools": known}))
        if tool.per_user and not call.user:
            return _result(call, Outcome(False, "I can't tell who you are, so I can't use your saved data."))
        try:
            args = tool.args.model_validate(call.args or {})
        except ValidationError as exc:
            return _result(call, Outcome(False, explain(tool, exc), {"error": "bad_args"}))
        if tool.mutates and self.db is not None:
            cached = await self.db.run(records.cached_result, call.call_id, call.user)
            if cached is not None:
                log.info("call %s was answered before; repeating that answer", call.call_id)
                return _result(call, Outcome(cached["ok"], cached["text"], cached.get("data")))
        try:
            outcome = await tool.run(call, args)
        except ToolError as exc:
            outcome = Outcome(False, str(exc), exc.data)
        if tool.mutates and self.db is not None:
            await self.db.run(
                records.remember_result,
                call.call_id,
                call.user,
                call.name,
                {"ok": outcome.ok, "text": outcome.text, "data": outcome.data},
            )
        return _result(call, outcome)


def _result(call: ToolCall, outcome: Outcome) -> ToolResult:
    return ToolResult(
        session_id=call.session_id,
        turn_id=call.turn_id,
        seq=call.seq,
        ts=dict(call.ts),
        call_id=call.call_id,
        name=call.name,
        ok=outcome.ok,
        text=outcome.text,
        data=outcome.data,
    ).stamp("tool_done")  # type: ignore[return-value]


def failure(call: ToolCall, text: str, code: str) -> ToolResult:
    """An error answer for a call that could not run (timeout, internal error)."""
    return _result(call, Outcome(False, text, {"error": code}))


def explain(tool: Tool, exc: ValidationError) -> str:
    """A sentence for the first problem with a call's arguments."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else ""
    if err["type"] == "value_error" and "error" in err.get("ctx", {}):
        return str(err["ctx"]["error"])
    field_info = tool.args.model_fields.get(name)
    what = f" ({field_info.description})" if field_info and field_info.description else ""
    if err["type"] == "missing":
        return f"The {tool.name} tool needs '{name}'{what}."
    return f"The {tool.name} tool got a bad '{name}'{what}: {err['msg']}."
