"""Handlers bound to the tool catalogue, and dispatch of one call to its handler.

Each tool is a :class:`Tool`: an entry of :mod:`voicefleet.catalogue` (name,
argument model, result model) and an async handler returning an
:class:`Outcome`. The registry holds exactly the catalogue: a catalogue tool
without a handler, or a handler without an entry, stops the worker at start.
Bad arguments and unknown names become a refusal with a sentence, never an
exception. Tools that change something (``mutates``) keep their answer per
``call_id``, so a call redelivered after a worker died gets the same answer
instead of doing it twice. Calls of the tools of MCP servers (``mcp.<server>.<tool>``,
not in the catalogue) go to the ``remote`` handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from voicefleet.catalogue import CATALOGUE, Refusal, ToolArgs, ToolData, ToolSpec, spec
from voicefleet.messages import ToolCall, ToolResult
from voicefleet.remote_tools import split_name

from . import records
from .store import Database

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a handler produced: ``text`` is one or two sentences to speak.

    ``data`` is the tool's result model when ``ok``, a :class:`Refusal` otherwise.
    """

    ok: bool
    text: str
    data: ToolData | None = None


class ToolError(Exception):
    """A refusal the user should hear (``str()`` is the sentence)."""

    def __init__(self, text: str, error: str = "refused", candidates: list[dict[str, Any]] | None = None) -> None:
        super().__init__(text)
        self.data = Refusal(error=error, candidates=candidates or [])


def refuse(text: str, error: str, candidates: list[dict[str, Any]] | None = None) -> Outcome:
    """A refusal as an outcome (for handlers that return rather than raise)."""
    return Outcome(False, text, Refusal(error=error, candidates=candidates or []))


Handler = Callable[[ToolCall, Any], Awaitable[Outcome]]
#: Runs a call of a tool found at run time (``mcp.<server>.<tool>``, see ``mcp_client``).
RemoteHandler = Callable[[ToolCall], Awaitable[Outcome]]


@dataclass(frozen=True)
class Tool:
    """A catalogue entry with the handler that runs it."""

    spec: ToolSpec
    run: Handler

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def args(self) -> type[ToolArgs]:
        return self.spec.args


def bind(name: str, run: Handler) -> Tool:
    """The handler ``run`` for the catalogue tool ``name`` (``KeyError`` when it has no entry)."""
    return Tool(spec(name), run)


class CatalogueMismatch(RuntimeError):
    """The handlers do not cover the catalogue exactly: the worker must not start."""


@dataclass
class Registry:
    """Tool name -> :class:`Tool`, with argument checks and the per-call answer log."""

    tools: dict[str, Tool] = field(default_factory=dict)
    db: Database | None = None  # where answers of mutating calls are kept
    remote: RemoteHandler | None = None  # runs mcp.<server>.<tool> calls

    @classmethod
    def of(cls, tools: Iterable[Tool], db: Database | None = None, remote: RemoteHandler | None = None) -> Registry:
        """A handler for every catalogue tool and for nothing else, or :class:`CatalogueMismatch`."""
        by_name: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in by_name:
                raise CatalogueMismatch(f"two handlers for {tool.name}")
            by_name[tool.name] = tool
        missing = sorted(set(CATALOGUE) - set(by_name))
        extra = sorted(set(by_name) - set(CATALOGUE))
        if missing or extra:
            raise CatalogueMismatch(f"tools without a handler: {missing}; handlers without a catalogue entry: {extra}")
        return cls(by_name, db, remote)

    async def dispatch(self, call: ToolCall) -> ToolResult:
        """Run one call; always returns a result (``ok=False`` with a sentence on refusal)."""
        if self.remote is not None and split_name(call.name) is not None:
            return _answer(call, await self.remote(call))
        tool = self.tools.get(call.name)
        if tool is None:
            return _answer(call, refuse(f"I don't have a tool called {call.name!r}.", "unknown_tool"))
        if tool.spec.per_user and not call.user:
            return _answer(call, refuse("I can't tell who you are, so I can't use your saved data.", "no_user"))
        try:
            args = tool.args.model_validate(call.args or {})
        except ValidationError as exc:
            return _answer(call, refuse(explain(tool, exc), "bad_args"))
        if tool.spec.mutates and self.db is not None:
            cached = await self.db.run(records.cached_result, call.call_id, call.user)
            if cached is not None:
                log.info("call %s was answered before; repeating that answer", call.call_id)
                return _result(call, cached["ok"], cached["text"], cached.get("data"))
        try:
            outcome = await tool.run(call, args)
        except ToolError as exc:
            outcome = Outcome(False, str(exc), exc.data)
        expected = tool.spec.result if outcome.ok else Refusal
        if not isinstance(outcome.data, expected):
            # A handler broke the catalogue's contract: a bug, answered as an internal error.
            raise TypeError(f"{call.name} answered {type(outcome.data).__name__}, not {expected.__name__}")
        data = outcome.data.model_dump(mode="json")
        if tool.spec.mutates and self.db is not None:
            await self.db.run(
                records.remember_result,
                call.call_id,
                call.user,
                call.name,
                {"ok": outcome.ok, "text": outcome.text, "data": data},
            )
        return _result(call, outcome.ok, outcome.text, data)


def _answer(call: ToolCall, outcome: Outcome) -> ToolResult:
    data = outcome.data.model_dump(mode="json") if outcome.data is not None else None
    return _result(call, outcome.ok, outcome.text, data)


def _result(call: ToolCall, ok: bool, text: str, data: dict[str, Any] | None) -> ToolResult:
    return ToolResult(
        session_id=call.session_id,
        turn_id=call.turn_id,
        seq=call.seq,
        ts=dict(call.ts),
        call_id=call.call_id,
        name=call.name,
        ok=ok,
        text=text,
        data=data,
    ).stamp("tool_done")  # type: ignore[return-value]


def failure(call: ToolCall, text: str, code: str) -> ToolResult:
    """An error answer for a call that could not run (timeout, internal error)."""
    return _answer(call, refuse(text, code))


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
