"""The MCP client of the tools worker against real MCP servers over stdio, with a real Redis.

``mcp-server-time`` (from PyPI) and a small server whose tool list changes
(``tests/mcp_changing_server.py``) run as child processes. No fleet: the
links are driven directly, which keeps these fast; the fleet test
(``test_mcp_fleet.py``) shows the same through a whole turn, and a server
killed mid-call.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import REDIS_URL
from fleet import delete_prefix, eventually

from tools_worker.mcp_client import McpTools
from tools_worker.settings import ToolsSettings
from voicefleet.bus import Bus
from voicefleet.messages import ToolCall, new_id
from voicefleet.remote_tools import RemoteCatalogue
from voicefleet.settings import BusSettings

pytest.importorskip("mcp_server_time", reason="mcp-server-time is not installed (scripts/setup.sh --dev)")

HERE = Path(__file__).resolve().parent
TIME_SERVER = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}


def children_running(marker: str) -> list[int]:
    """PIDs of this process's children whose command line contains ``marker``."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                pids.append(int(pid))
    return pids


# One set of server processes for the module: starting them is most of these tests' time.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def bus(redis_available: None) -> AsyncIterator[Bus]:
    prefix = f"vftest-{new_id()[:8]}"
    b = Bus(BusSettings(redis_url=REDIS_URL, key_prefix=prefix))
    yield b
    await b.close()
    delete_prefix(REDIS_URL, prefix)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def mcp_tools(bus: Bus, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[McpTools]:
    tmp_path = tmp_path_factory.mktemp("mcp-client")
    servers = {
        "time": {**TIME_SERVER, "deny": ["convert_time"]},
        "changing": {"command": sys.executable, "args": [str(HERE / "mcp_changing_server.py")],
                     "max_result_chars": 100},
        "old": {"command": sys.executable, "args": [str(HERE / "mcp_changing_server.py"), "old"]},
        "gone": {"command": "/nonexistent/mcp-server"},
    }
    settings = ToolsSettings(bus=bus.settings, data_dir=tmp_path, search_dirs="", mcp_servers=json.dumps(servers),
                             mcp_timeout_s=1.5, mcp_relist_s=0.5)
    tools = McpTools(settings, RemoteCatalogue(bus))
    tools.links["old"].mode = "legacy"  # the same server, spoken to as a 2025 client: notifications, no listen
    await tools.start()
    tasks = [asyncio.create_task(loop) for loop in tools.loops()]
    try:
        await eventually(lambda: _all_up(tools), within=60)
        yield tools
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _all_up(tools: McpTools) -> bool:
    return all(link.up for name, link in tools.links.items() if name != "gone")


def call(tool: str, user: str = "ada", **args: object) -> ToolCall:
    return ToolCall(session_id="s1", user=user, name=tool, args=args)


async def test_tools_are_published_with_their_schemas_and_the_allow_deny_lists(mcp_tools: McpTools, bus: Bus) -> None:
    listings = await RemoteCatalogue(bus).listings()
    assert listings["time"].up and listings["changing"].up
    time_tools = {t.name: t for t in listings["time"].tools}
    assert set(time_tools) == {"mcp.time.get_current_time"}  # convert_time is denied
    schema = time_tools["mcp.time.get_current_time"].input_schema
    assert "timezone" in schema["properties"]
    denied = await mcp_tools.dispatch(call("mcp.time.convert_time", source_timezone="UTC", time="10:00",
                                           target_timezone="Asia/Tokyo"))
    assert not denied.ok and denied.data is not None and denied.data.error == "denied"  # type: ignore[attr-defined]


async def test_a_call_reaches_the_server_with_the_user_and_its_answer_is_speakable(mcp_tools: McpTools) -> None:
    answer = await mcp_tools.dispatch(call("mcp.time.get_current_time", timezone="Asia/Tokyo"))
    assert answer.ok, answer.text
    assert "timezone: Asia/Tokyo" in answer.text and "{" not in answer.text
    assert answer.data is not None and answer.data.structured["timezone"] == "Asia/Tokyo"  # type: ignore[attr-defined]
    who = await mcp_tools.dispatch(call("mcp.changing.whoami", user="grace"))
    assert who.ok and who.text == "grace"


async def test_a_long_answer_is_cut_to_the_servers_limit(mcp_tools: McpTools) -> None:
    long = await mcp_tools.dispatch(call("mcp.changing.ramble", words=2000))
    assert long.ok and len(long.text) <= 100 and long.text.endswith("…")
    assert long.data is not None and long.data.truncated and len(long.data.text) <= 100  # type: ignore[attr-defined]


@pytest.mark.parametrize("server", ["changing", "old"])
async def test_the_catalogue_follows_a_tools_list_changed(mcp_tools: McpTools, bus: Bus, server: str) -> None:
    grown = await mcp_tools.dispatch(call(f"mcp.{server}.grow", name="sprout"))
    assert grown.ok, grown.text

    async def listed() -> bool:
        return f"mcp.{server}.sprout" in await RemoteCatalogue(bus).tools()

    await eventually(listed, within=20)
    said = await mcp_tools.dispatch(call(f"mcp.{server}.sprout"))
    assert said.ok and said.text == "I am sprout."


async def test_a_server_that_cannot_start_costs_one_sentence(mcp_tools: McpTools, bus: Bus) -> None:
    listing = (await RemoteCatalogue(bus).listings())["gone"]
    assert not listing.up and listing.error.startswith("cannot connect")
    answer = await mcp_tools.dispatch(call("mcp.gone.anything"))
    assert not answer.ok and answer.text == "Sorry, the gone service is not available right now."


async def test_a_slow_server_costs_one_sentence_then_works_again(mcp_tools: McpTools) -> None:
    [pid] = children_running("mcp_server_time")
    os.kill(pid, signal.SIGSTOP)
    try:
        slow = await asyncio.wait_for(mcp_tools.dispatch(call("mcp.time.get_current_time", timezone="UTC")), 10)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert not slow.ok and slow.text == "Sorry, the time service did not answer in time."
    again = await mcp_tools.dispatch(call("mcp.time.get_current_time", timezone="UTC"))
    assert again.ok, again.text


async def test_a_server_that_dies_while_idle_is_noticed_and_started_again(mcp_tools: McpTools) -> None:
    link = mcp_tools.links["old"]
    [pid] = children_running("mcp_changing_server.py old")
    os.kill(pid, signal.SIGKILL)

    async def replaced() -> bool:
        return link.up and children_running("mcp_changing_server.py old") not in ([], [pid])

    await eventually(replaced, within=30)  # no call needed: the periodic listing found it dead
    who = await mcp_tools.dispatch(call("mcp.old.whoami", user="ada"))
    assert who.ok and who.text == "ada"
