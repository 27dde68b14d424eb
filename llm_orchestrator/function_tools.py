"""The tool catalogue described as OpenAI functions, for models that can call them.

Only used with a backend that supports tools (an OpenAI-compatible one marked
``VF_LLM_OPENAI_FUNCTION_CALLING``, or llama.cpp under ``VF_LLM_TOOL_GRAMMAR``).
The names, descriptions and argument schemas come from
:mod:`voicefleet.catalogue`, the one list the tools worker also serves, plus
the tools of MCP servers the tools worker published
(:mod:`voicefleet.remote_tools`), each with its server's own JSON Schema.
OpenAI function names cannot contain dots, so ``notes.add`` is offered as
``notes_add`` and ``mcp.time.get_current_time`` as ``mcp_time_get_current_time``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llama_index.core.tools import BaseTool, FunctionTool, ToolMetadata

from voicefleet.catalogue import CATALOGUE
from voicefleet.remote_tools import RemoteTool

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME = 64  # OpenAI's limit on a function name


def function_name(tool: str) -> str:
    return _NOT_IN_NAME.sub("_", tool.replace(".", "_"))[:MAX_NAME]


def tool_name(function: str, remote: Mapping[str, RemoteTool] | None = None) -> str | None:
    """The tools worker's name for an OpenAI function name, or None if it is not one of ours."""
    for tool in [*CATALOGUE, *(remote or {})]:
        if function_name(tool) == function:
            return tool
    return None


def _never_called(**kwargs: Any) -> str:
    # The model only chooses; the tools worker runs the tool over the bus.
    raise RuntimeError("tools run in the tools worker, not here")


class SchemaMetadata(ToolMetadata):
    """Tool metadata whose parameters are a JSON Schema as given (an MCP server's), not a pydantic model."""

    def __init__(self, name: str, description: str, schema: dict[str, Any]) -> None:
        super().__init__(name=name, description=description)
        self.schema = schema

    def get_parameters_dict(self) -> dict[str, Any]:
        schema = dict(self.schema)
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        return schema


def function_tools(remote: Mapping[str, RemoteTool] | None = None) -> list[BaseTool]:
    """The tools as llama-index ``FunctionTool`` objects (for their OpenAI schemas)."""
    tools: list[BaseTool] = [
        FunctionTool.from_defaults(
            fn=_never_called, name=function_name(spec.name), description=spec.description, fn_schema=spec.args
        )
        for spec in CATALOGUE.values()
    ]
    for tool in (remote or {}).values():
        description = tool.description or f"The {tool.tool} tool of the {tool.server} MCP server."
        metadata = SchemaMetadata(function_name(tool.name), description, tool.input_schema)
        tools.append(FunctionTool(fn=_never_called, metadata=metadata))
    return tools
