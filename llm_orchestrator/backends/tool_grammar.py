"""Tool calls for a model with no function calling of its own: a grammar, built from the tool schemas.

The model is shown the tools in its system message and sampled under a
GBNF grammar that allows exactly two shapes of answer: one JSON call,
``{"name": "notes_add", "arguments": {...}}``, valid against that tool's
argument schema, or plain text that does not start with ``{``. So a small
model can emit a valid call or an ordinary reply, never a broken call. The
schemas come from :func:`function_tools` (llama-index ``FunctionTool``s), the
same ones an OpenAI-compatible server is offered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_index.core.tools import BaseTool

_TEXT_RULES = r"""
root ::= call | text
text ::= [^{ \t\n] [^\x00]*
"""

CALL_PREFIX = "{"
_DROPPED = ("title", "description", "maxLength", "minLength", "maxItems", "minItems", "pattern", "format")


def call_schema(tools: Sequence[BaseTool]) -> dict[str, Any]:
    """One JSON schema for a call of any of ``tools``: name and the arguments that name takes."""
    shapes = []
    for tool in tools:
        meta = tool.metadata
        parameters = meta.get_parameters_dict()
        shapes.append(
            {
                "type": "object",
                "properties": {"name": {"const": meta.get_name()}, "arguments": _plain(parameters)},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return {"oneOf": shapes}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """The argument schema without titles, descriptions and length bounds.

    Titles and descriptions only lengthen the grammar. A length bound becomes one
    nested optional rule per character (``maxLength: 1000`` made a 69 kB grammar
    that crashed llama.cpp's sampler); the tools worker checks lengths anyway.
    """
    out: dict[str, Any] = {k: v for k, v in schema.items() if k not in _DROPPED}
    if "properties" in out:
        out["properties"] = {name: _plain(sub) for name, sub in out["properties"].items()}
    for key in ("anyOf", "oneOf"):
        if key in out:
            out[key] = [_plain(sub) for sub in out[key]]
    if out.get("type") == "object":
        out.setdefault("additionalProperties", False)
    return out


def gbnf(tools: Sequence[BaseTool], allow_text: bool = True) -> str:
    """The grammar: one valid call of these tools, or (``allow_text``) plain text."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf  # only where llama.cpp is used

    rules = str(json_schema_to_gbnf(json.dumps(call_schema(tools))))
    if not allow_text:
        return rules + "\n"
    # The converter names its top rule "root"; it becomes "call", one of two answers.
    lines = [("call" + line[4:]) if line.startswith("root ::=") else line for line in rules.splitlines()]
    return _TEXT_RULES.strip() + "\n" + "\n".join(lines) + "\n"


def tools_prompt(tools: Sequence[BaseTool]) -> str:
    """What the system message says about the tools."""
    lines = [
        "You can use these tools. To use one, answer with only a JSON object like "
        '{"name": "notes_add", "arguments": {"text": "buy milk"}}. Otherwise answer in plain words.'
    ]
    for tool in tools:
        meta = tool.metadata
        arguments = ", ".join(meta.get_parameters_dict().get("properties", {}))
        lines.append(f"- {meta.get_name()}({arguments}): {meta.description}")
    return "\n".join(lines)


def parse_call(text: str) -> tuple[str, dict[str, Any]] | None:
    """(function name, arguments) from a reply in the call shape; None if it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get("arguments")
    return data["name"], arguments if isinstance(arguments, dict) else {}
