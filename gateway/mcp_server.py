"""The assistant's own tools as an MCP server: streamable HTTP at ``/mcp``, behind the gateway's JWT.

Any MCP client (Claude Desktop, an IDE, the SDK's own client) sends
``Authorization: Bearer <jwt>``; the token's subject is the user. Tools are
the catalogue's (:mod:`voicefleet.catalogue`) minus web search: notes, memory,
file search, timers and the time, with the argument models' JSON Schemas.
A call does not run here: it goes over the bus to the tools worker as a
``ToolCall`` for the authenticated user, exactly as a spoken command does, so
a note dictated by voice can be read here and the reverse. Notes and memories
are also offered as resources (``voicefleet://notes``, ``voicefleet://notes/{id}``,
``voicefleet://memories``), read through the same tools. Each user sees only
their own data: the tools worker keys everything by the call's user.

The server is stateless (every POST stands alone, JSON answers), so any
gateway process can serve any request.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from voicefleet.bus import REDIS_DOWN, Bus
from voicefleet.catalogue import CATALOGUE, ToolSpec
from voicefleet.messages import ToolCall, ToolResult

from . import auth
from .settings import GatewaySettings

log = logging.getLogger(__name__)

#: The catalogue tools offered over MCP (web search is left out: an MCP client has its own).
OFFERED = tuple(name for name in CATALOGUE if not name.startswith("web."))
#: The bus session id of calls made over MCP (for logs: they belong to no voice session).
MCP_SESSION = "mcp"
_USER = "voicefleet.user"  # scope key the endpoint stores the authenticated user under
NOTES, MEMORIES = "voicefleet://notes", "voicefleet://memories"
_NOTE = re.compile(r"^voicefleet://notes/(\d+)$")
INSTRUCTIONS = (
    "The voicefleet assistant's own tools: the user's notes and remembered facts, their files, timers and the "
    "time. Everything is the signed-in user's own; the same notes are read and written by voice."
)


def offered_tools() -> list[types.Tool]:
    return [_tool(CATALOGUE[name]) for name in OFFERED]


def _tool(spec: ToolSpec) -> types.Tool:
    schema = spec.args.model_json_schema()
    schema.setdefault("properties", {})
    hints = types.ToolAnnotations(read_only_hint=not spec.mutates, open_world_hint=False)
    return types.Tool(name=spec.name, description=spec.description, input_schema=schema, annotations=hints)


class AssistantMcp:
    """The MCP server: handlers that send every call through the bus as the authenticated user."""

    def __init__(self, bus: Bus, settings: GatewaySettings) -> None:
        self.bus, self.settings = bus, settings
        self.tools = offered_tools()
        self.server: Server[Any] = Server(
            "voicefleet",
            version="0.1.0",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
        )
        self.manager = StreamableHTTPSessionManager(app=self.server, stateless=True, json_response=True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session manager's task group, for the app's lifespan."""
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ``/mcp`` endpoint: refuse without a valid token, else hand over to the SDK as that user."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("authorization", "")
        token = given[7:].strip() if given.lower().startswith("bearer ") else None
        try:
            principal = auth.verify(token, self.settings)
        except auth.AuthError as exc:
            log.info("refused MCP request: %s", exc.reason)
            response = JSONResponse({"error": "unauthorized", "message": exc.reason}, status_code=401,
                                    headers={"WWW-Authenticate": 'Bearer realm="voicefleet"'})
            await response(scope, receive, send)
            return
        scope[_USER] = principal.user
        await self.manager.handle_request(scope, receive, send)

    # ---- handlers ------------------------------------------------------------------
    async def _list_tools(self, ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.tools)

    async def _call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        if params.name not in OFFERED:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name!r}")
        result = await self._run(ctx, params.name, params.arguments or {})
        return types.CallToolResult(
            content=[types.TextContent(text=result.text)],
            structured_content=result.data if isinstance(result.data, dict) else None,
            is_error=not result.ok,
        )

    async def _list_resources(self, ctx: ServerRequestContext[Any], params: Any) -> types.ListResourcesResult:
        resources = [
            types.Resource(uri=NOTES, name="notes", description="All your notes", mime_type="text/plain"),
            types.Resource(uri=MEMORIES, name="memories", description="What the assistant remembers about you",
                           mime_type="text/plain"),
        ]
        listed = await self._run(ctx, "notes.list", {})
        for note in (listed.data or {}).get("notes", []) if listed.ok and isinstance(listed.data, dict) else []:
            resources.append(types.Resource(uri=f"{NOTES}/{note['id']}", name=f"note {note['id']}",
                                            description=str(note["text"])[:80], mime_type="text/plain"))
        return types.ListResourcesResult(resources=resources)

    async def _list_templates(self, ctx: ServerRequestContext[Any], params: Any) -> types.ListResourceTemplatesResult:
        note = types.ResourceTemplate(uri_template=f"{NOTES}/{{id}}", name="note", description="One note by number",
                                      mime_type="text/plain")
        return types.ListResourceTemplatesResult(resource_templates=[note])

    async def _read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        if uri == NOTES:
            text = _lines(await self._run(ctx, "notes.list", {}), "notes")
        elif uri == MEMORIES:
            text = _lines(await self._run(ctx, "memory.list", {}), "memories")
        elif found := _NOTE.match(uri):
            result = await self._run(ctx, "notes.read", {"id": int(found.group(1))})
            note = result.data.get("note") if result.ok and isinstance(result.data, dict) else None
            if not note or note.get("id") != int(found.group(1)):
                raise MCPError(types.INVALID_PARAMS, f"no note {found.group(1)}")
            text = str(note["text"])
        else:
            raise MCPError(types.INVALID_PARAMS, f"unknown resource {uri}")
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type="text/plain",
                                                                             text=text)])

    async def _run(self, ctx: ServerRequestContext[Any], name: str, args: dict[str, Any]) -> ToolResult:
        """One tool call over the bus for the user of this request (the same path as a spoken command)."""
        user = _user_of(ctx)
        call = ToolCall(session_id=MCP_SESSION, user=user, name=name, args=args).stamp("tool_call")
        assert isinstance(call, ToolCall)
        try:
            result = await self.bus.call_tool(call, self.settings.mcp_tool_timeout_s)
        except REDIS_DOWN:
            raise MCPError(types.INTERNAL_ERROR, "the assistant's message bus is unreachable; try again") from None
        if result is None:
            log.warning("MCP: %s for %s got no answer from the tools worker", name, user)
            return ToolResult(call_id=call.call_id, name=name, ok=False, data={"error": "timeout"},
                              text="The assistant's tools did not answer in time.")
        log.info("MCP: %s for %s -> %s", name, user, "ok" if result.ok else "refused")
        return result


def _user_of(ctx: ServerRequestContext[Any]) -> str:
    request = ctx.request
    user = request.scope.get(_USER) if request is not None else None
    if not isinstance(user, str) or not user:  # the endpoint always sets it; never fall back to anyone
        raise MCPError(types.INVALID_REQUEST, "not authenticated")
    return user


def _lines(result: ToolResult, field: str) -> str:
    """Numbered lines ``#1 text`` of a notes or memory listing."""
    if not result.ok or not isinstance(result.data, dict):
        return result.text
    items = result.data.get(field, [])
    return "\n".join(f"#{item['id']} {item['text']}" for item in items) or f"(no {field})"
