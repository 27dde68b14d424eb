"""A small stdio MCP server whose tool list changes: ``grow(name)`` adds a tool and says so.

Used by the MCP client's tests to show the catalogue following
``tools/list_changed`` (2026 servers announce it on ``subscriptions/listen``,
2025 ones as a notification; the SDK's ``notify_tools_changed`` serves both).
Extra command-line words are ignored (tests use them to tell two copies apart).
``whoami`` answers the user id the call carried in its ``_meta``; ``ramble`` answers at length.
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("changing")


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called ``name``."""

    def added() -> str:
        return f"I am {name}."

    server.add_tool(added, name=name, description=f"The {name} tool, added at run time.")
    await ctx.notify_tools_changed()  # to subscriptions/listen streams (2026-07-28)
    if ctx.protocol_version and ctx.protocol_version < "2026":
        await ctx.session.send_tool_list_changed()  # the 2025 notification on the session
    return f"added {name}"


@server.tool()
async def whoami(ctx: Context) -> str:
    """The user the call was made for (from the request's _meta)."""
    meta = ctx.request_context.meta or {}
    return str(meta.get("io.voicefleet/user", "nobody"))


@server.tool()
async def ramble(words: int) -> str:
    """Say ``words`` words (an answer over the size limit)."""
    return " ".join(["word"] * words)


if __name__ == "__main__":
    server.run("stdio")
