"""A model's function call reaches a tool of an MCP server: orchestrator -> bus -> tools worker -> MCP.

The orchestrator and the tools worker run in this process on a real Redis; the
tools worker is connected to ``mcp-server-time`` over stdio. The model is the
harness's scripted backend (the tiny embedded model rarely picks the right tool),
asking for the function the orchestrator built from the published MCP listing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fleet import eventually
from llm_harness import FakeBackend, messages, read_until_done, running_service, send_turn
from tools_harness import running, tools_settings

from llm_orchestrator.backends.base import ToolRequest
from tools_worker.embeddings import load_embedder
from voicefleet.bus import Bus
from voicefleet.messages import ReplyDone, ToolCall, ToolResult
from voicefleet.remote_tools import RemoteCatalogue
from voicefleet.settings import BusSettings

pytest.importorskip("mcp_server_time", reason="mcp-server-time is not installed (scripts/setup.sh --dev)")
pytestmark = [pytest.mark.models]

TIME_SERVER = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}


async def test_a_models_function_call_reaches_the_mcp_tool(bus: Bus, bus_settings: BusSettings,
                                                            tmp_path: Path) -> None:
    settings = tools_settings(bus_settings, tmp_path, mcp_servers=json.dumps({"time": TIME_SERVER}))
    model = FakeBackend("scripted", call=ToolRequest("c1", "mcp_time_get_current_time", {"timezone": "Asia/Tokyo"}))
    async with running(settings, load_embedder()), running_service(bus_settings, [model], intents=False):

        async def listed() -> bool:
            return "mcp.time.get_current_time" in await RemoteCatalogue(bus).tools()

        await eventually(listed, within=30)
        turn = await send_turn(bus, "s-model", "Could the time server tell me about Tokyo?", user="ada")
        entries = await read_until_done(bus, "s-model", turn.turn_id)
    [asked] = messages(entries, ToolCall, turn.turn_id)
    [answered] = messages(entries, ToolResult, turn.turn_id)
    assert (asked.name, asked.args, asked.user) == ("mcp.time.get_current_time", {"timezone": "Asia/Tokyo"}, "ada")
    assert answered.ok and answered.data["structured"]["timezone"] == "Asia/Tokyo"
    [done] = messages(entries, ReplyDone, turn.turn_id)
    assert "Asia/Tokyo" in done.text, done.text  # under a grammar the tool's own words are the answer
