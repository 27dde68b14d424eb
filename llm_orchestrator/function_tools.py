"""The tool catalogue described as OpenAI functions, for models that can call them.

Only used with an OpenAI-compatible backend marked as function-calling
(``VF_LLM_OPENAI_FUNCTION_CALLING``). The names, descriptions and argument
schemas come from :mod:`voicefleet.catalogue`, the one list the tools worker
also serves. OpenAI function names cannot contain dots, so ``notes.add`` is
offered as ``notes_add``.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import BaseTool, FunctionTool

from voicefleet.catalogue import CATALOGUE


def function_name(tool: str) -> str:
    return tool.replace(".", "_")


def tool_name(function: str) -> str | None:
    """The tools worker's name for an OpenAI function name, or None if it is not one of ours."""
    for tool in CATALOGUE:
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
            fn=_never_called, name=function_name(spec.name), description=spec.description, fn_schema=spec.args
        )
        for spec in CATALOGUE.values()
    ]
