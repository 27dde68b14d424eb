"""The tools worker's tools described as OpenAI functions, for models that can call them.

Only used with an OpenAI-compatible backend marked as function-calling
(``VF_LLM_OPENAI_FUNCTION_CALLING``). OpenAI function names cannot contain
dots, so ``notes.add`` is offered as ``notes_add``.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import BaseTool, FunctionTool
from pydantic import BaseModel, Field


class _NoArgs(BaseModel):
    pass


class _Text(BaseModel):
    text: str = Field(description="What to store, in the user's words")


class _Query(BaseModel):
    query: str = Field(description="What to look for")


class _IdOrQuery(BaseModel):
    id: str | None = Field(None, description="The number of the note or fact")
    query: str | None = Field(None, description="Words from it, instead of its number")


class _Update(BaseModel):
    id: str = Field(description="The number of the fact")
    text: str = Field(description="The corrected fact")


class _Timer(BaseModel):
    seconds: int = Field(description="Duration in seconds")
    label: str = Field("", description="What the timer is for, e.g. pasta")


class _Label(BaseModel):
    label: str = Field("", description="Which timer; empty for the only or latest one")


_SPECS: dict[str, tuple[str, type[BaseModel]]] = {
    "notes.add": ("Save a note for the user.", _Text),
    "notes.list": ("List the user's notes.", _NoArgs),
    "notes.search": ("Search the user's notes.", _Query),
    "notes.read": ("Read one note, by number or words from it.", _IdOrQuery),
    "notes.delete": ("Delete one note, by number or words from it.", _IdOrQuery),
    "memory.remember": ("Remember a fact about the user for later conversations.", _Text),
    "memory.list": ("List what you remember about the user.", _NoArgs),
    "memory.update": ("Correct a remembered fact.", _Update),
    "memory.forget": ("Forget a remembered fact, by number or words from it.", _IdOrQuery),
    "files.search": ("Search the user's documents.", _Query),
    "web.search": ("Search the web.", _Query),
    "timer.set": ("Start a countdown timer.", _Timer),
    "timer.list": ("List running timers.", _NoArgs),
    "timer.cancel": ("Cancel a timer.", _Label),
    "time.now": ("Get the current date and time.", _NoArgs),
}


def function_name(tool: str) -> str:
    return tool.replace(".", "_")


def tool_name(function: str) -> str | None:
    """The tools worker's name for an OpenAI function name, or None if it is not one of ours."""
    for tool in _SPECS:
        if function_name(tool) == function:
            return tool
    return None


def _never_called(**kwargs: Any) -> str:
    # The model only chooses; the tools worker runs the tool over the bus.
    raise RuntimeError("tools run in the tools worker, not here")


def function_tools() -> list[BaseTool]:
    """The tools as llama-index ``FunctionTool`` objects (for their OpenAI schemas)."""
    return [
        FunctionTool.from_defaults(
            fn=_never_called, name=function_name(tool), description=description, fn_schema=schema
        )
        for tool, (description, schema) in _SPECS.items()
    ]
