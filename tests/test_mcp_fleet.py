"""MCP both ways, through the whole fleet (gateway + orchestrator + tools + TTS as processes).

Client: the tools worker connects to ``mcp-server-time`` (from PyPI, over
stdio); its tools are in the catalogue; a typed request reaches one through an
intent template added by configuration (``VF_LLM_INTENT_FILES``) and the answer
is spoken; the server killed mid-call costs one sentence and the next turn works.

Server: the SDK's own streamable-HTTP client talks to the gateway's ``/mcp``
with a JWT: it lists the tools, adds a note that a typed turn then reads back
(and the reverse, as a resource), is refused without a valid token, and one
user never sees another's notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from conftest import REDIS_URL, free_port
from fleet import ROOT, RunningFleet, eventually, fleet_secret, mint_token, running_fleet

from audio_client.headless import HeadlessClient, TurnResult
from audio_client.protocol import StartOptions
from voicefleet.bus import Bus
from voicefleet.messages import ToolCall, new_id
from voicefleet.settings import BusSettings

pytestmark = [pytest.mark.fleet, pytest.mark.models]

WORKERS = {"llm": "llm_orchestrator", "tts": "tts_worker", "tools": "tools_worker"}
TIME_SERVER = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}
INTENTS = ROOT / "docs" / "examples" / "mcp_time.en.yaml"  # the example the README shows


@dataclass
class McpFleet:
    fleet: RunningFleet

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.fleet.port}"

    def token(self, sub: str) -> str:
        return mint_token(self.fleet.secret, sub)

    def listing(self, server: str = "time") -> dict[str, object]:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            raw = client.hget(f"{self.fleet.prefix}:remote_tools", server)
        finally:
            client.close()
        return json.loads(raw) if raw else {}


@pytest.fixture(scope="module")
def mcp_fleet(redis_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpFleet]:
    if importlib.util.find_spec("mcp_server_time") is None:
        pytest.skip("mcp-server-time is not installed (scripts/setup.sh --dev)")
    port, prefix = free_port(), f"vftest-{new_id()[:8]}"
    # The tools worker is also a client of the gateway's own /mcp, over streamable HTTP with a header.
    itself = {"url": f"http://127.0.0.1:{port}/mcp",
              "headers": {"Authorization": f"Bearer {mint_token(fleet_secret(prefix), 'svc')}"},
              "allow": ["notes.add", "notes.list", "time.now"]}
    env = dict(VF_TOOLS_DATA_DIR=str(tmp_path_factory.mktemp("tools-data")), VF_TOOLS_SEARCH_DIRS="",
               VF_TOOLS_WEB_PROVIDER="off", VF_LLM_MAX_TOKENS="24", VF_LLM_INTENT_FILES=str(INTENTS),
               VF_TOOLS_MCP_SERVERS=json.dumps({"time": TIME_SERVER, "self": itself}), VF_TOOLS_MCP_TIMEOUT_S="2",
               VF_LLM_INTENT_NEAREST="false",
               # Every turn here is a command, answered without a model: an OpenAI-compatible URL nobody serves
               # keeps the LLM out (faster, and these tests are about MCP, not the model).
               VF_LLM_BACKENDS="openai", VF_LLM_OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    with running_fleet(REDIS_URL, port, prefix, tmp_path_factory.mktemp("mcp-fleet-logs"), WORKERS, **env) as fleet:
        yield McpFleet(fleet)


async def ask(client: HeadlessClient, text: str) -> TurnResult:
    result = await client.ask(text, timeout_s=60)
    assert result.reply.strip() and result.audio, (text, result.reply, result.errors)  # answered, and spoken
    return result


def server_pid(fleet: RunningFleet) -> int:
    """The mcp-server-time process the tools worker started."""
    tools = fleet.procs["tools"].process.pid
    for task in Path(f"/proc/{tools}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"mcp_server_time" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
    raise AssertionError("mcp-server-time is not running under the tools worker")


# ---- the client ----------------------------------------------------------------------------------
async def test_the_catalogue_lists_the_servers_tools(mcp_fleet: McpFleet) -> None:
    async def up() -> bool:
        return bool(mcp_fleet.listing().get("up"))

    await eventually(up, within=60)
    tools = {t["name"]: t for t in mcp_fleet.listing()["tools"]}  # type: ignore[attr-defined]
    assert {"mcp.time.get_current_time", "mcp.time.convert_time"} <= set(tools)
    assert "timezone" in tools["mcp.time.get_current_time"]["input_schema"]["properties"]


async def test_the_client_also_reaches_servers_over_streamable_http(mcp_fleet: McpFleet) -> None:
    async def up() -> bool:
        return bool(mcp_fleet.listing("self").get("up"))

    await eventually(up, within=60)
    names = {t["name"] for t in mcp_fleet.listing("self")["tools"]}  # type: ignore[attr-defined]
    assert names == {"mcp.self.notes.add", "mcp.self.notes.list", "mcp.self.time.now"}  # the allow list
    bus = Bus(BusSettings(redis_url=REDIS_URL, key_prefix=mcp_fleet.fleet.prefix))
    try:  # a call the orchestrator would make: bus -> tools worker -> HTTP -> the gateway's /mcp -> bus -> tools
        call = ToolCall(session_id="s", user="ada", name="mcp.self.notes.add", args={"text": "service the boiler"})
        added = await bus.call_tool(call, 10)
    finally:
        await bus.close()
    assert added is not None and added.ok, added
    async with mcp_client(mcp_fleet, mcp_fleet.token("svc")) as svc:  # stored for the header's user
        listed = await svc.call_tool("notes.list", {})  # type: ignore[attr-defined]
    assert "boiler" in listed.content[0].text


async def test_a_typed_request_reaches_the_mcp_tool_and_is_spoken(mcp_fleet: McpFleet) -> None:
    async with HeadlessClient(mcp_fleet.fleet.ws, mcp_fleet.token("ada"), StartOptions(wake_word="")) as client:
        result = await ask(client, "Ask the time server for the time in Tokyo.")
    calls = [t for t in result.tools if "args" in t]
    assert calls and calls[0]["name"] == "mcp.time.get_current_time", result.tools
    assert calls[0]["args"] == {"timezone": "Asia/Tokyo"}
    assert "Asia/Tokyo" in result.reply, result.reply


async def test_a_server_killed_mid_call_costs_one_sentence_and_the_next_turn_works(mcp_fleet: McpFleet) -> None:
    pid = server_pid(mcp_fleet.fleet)
    tools_stream = f"{mcp_fleet.fleet.prefix}:tools"
    bus = redis.Redis.from_url(REDIS_URL)
    os.kill(pid, signal.SIGSTOP)  # the call is sent and waits; then the server dies under it
    try:
        async with HeadlessClient(mcp_fleet.fleet.ws, mcp_fleet.token("ada"), StartOptions(wake_word="")) as client:
            turn = asyncio.create_task(client.ask("What does the time service say about Paris?", timeout_s=60))

            async def in_flight() -> bool:
                return int(bus.xpending(tools_stream, "tools")["pending"]) > 0

            await eventually(in_flight, within=30)
            os.kill(pid, signal.SIGKILL)
            lost = await turn
            assert lost.audio and lost.reply.count(".") == 1, lost.reply  # one sentence, spoken
            assert "time service" in lost.reply and ("stopped answering" in lost.reply or "in time" in lost.reply)

            # The next turn works at once (the assistant's own clock) ...
            now = await ask(client, "What time is it?")
            assert [t["name"] for t in now.tools if "args" in t] == ["time.now"]

            # ... and the server is started again in the background.
            async def back() -> bool:
                with contextlib.suppress(AssertionError, OSError):
                    return bool(mcp_fleet.listing().get("up")) and server_pid(mcp_fleet.fleet) != pid
                return False

            await eventually(back, within=60)
            again = await ask(client, "Ask the time server for the time in Tokyo.")
            assert "Asia/Tokyo" in again.reply, again.reply
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        bus.close()


# ---- the server ------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def mcp_client(fleet: McpFleet, token: str) -> AsyncIterator[object]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(f"{fleet.http}/mcp", http_client=http)) as client:
            yield client


async def test_mcp_clients_list_the_assistants_tools(mcp_fleet: McpFleet) -> None:
    async with mcp_client(mcp_fleet, mcp_fleet.token("ada")) as client:
        listed = await client.list_tools()  # type: ignore[attr-defined]
    names = {t.name for t in listed.tools}
    assert {"notes.add", "notes.list", "memory.remember", "files.search", "timer.set", "time.now"} <= names
    assert not any(n.startswith(("web.", "mcp.")) for n in names)
    add = next(t for t in listed.tools if t.name == "notes.add")
    assert add.input_schema["required"] == ["text"]


async def test_a_note_added_over_mcp_is_read_back_by_voice_and_the_reverse(mcp_fleet: McpFleet) -> None:
    async with mcp_client(mcp_fleet, mcp_fleet.token("bea")) as client:
        added = await client.call_tool("notes.add", {"text": "buy saffron for the risotto"})  # type: ignore[attr-defined]
        assert not added.is_error, added.content
    async with HeadlessClient(mcp_fleet.fleet.ws, mcp_fleet.token("bea"), StartOptions(wake_word="")) as voice:
        read = await ask(voice, "What notes do I have?")
        assert "saffron" in read.reply.lower(), read.reply
        await ask(voice, "Take a note: call the plumber about the sink.")
    async with mcp_client(mcp_fleet, mcp_fleet.token("bea")) as client:
        notes = await client.read_resource("voicefleet://notes")  # type: ignore[attr-defined]
        text = notes.contents[0].text
        assert "saffron" in text and "plumber" in text, text
        resources = await client.list_resources()  # type: ignore[attr-defined]
        assert {"voicefleet://notes", "voicefleet://memories", "voicefleet://notes/2"} <= {
            str(r.uri) for r in resources.resources}


async def test_a_missing_or_wrong_token_is_refused(mcp_fleet: McpFleet) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=mcp_fleet.http) as http:
        missing = await http.post("/mcp", json=body, headers=headers)
        wrong = await http.post("/mcp", json=body, headers={
            **headers, "Authorization": f"Bearer {mint_token('not-the-secret-0123456789abcdef0123', 'ada')}"})
    assert missing.status_code == 401 and "missing token" in missing.json()["message"]
    assert wrong.status_code == 401 and "signature" in wrong.json()["message"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(Exception):  # noqa: B017 (the SDK reports the 401 as its own error type)
        async with mcp_client(mcp_fleet, "not-a-token") as client:
            await client.list_tools()  # type: ignore[attr-defined]


async def test_one_user_never_sees_anothers_notes(mcp_fleet: McpFleet) -> None:
    async with mcp_client(mcp_fleet, mcp_fleet.token("cy")) as cy:
        await cy.call_tool("notes.add", {"text": "the safe code is 4521"})  # type: ignore[attr-defined]
    async with mcp_client(mcp_fleet, mcp_fleet.token("dee")) as dee:
        listed = await dee.call_tool("notes.list", {})  # type: ignore[attr-defined]
        searched = await dee.call_tool("notes.search", {"query": "safe code"})  # type: ignore[attr-defined]
        notes = await dee.read_resource("voicefleet://notes")  # type: ignore[attr-defined]
        seen = " ".join([*(c.text for c in listed.content), *(c.text for c in searched.content),
                         notes.contents[0].text, json.dumps(listed.structured_content)])
        assert "4521" not in seen, seen
        with pytest.raises(Exception):  # noqa: B017 (cy's note 1 is not dee's: no such note)
            await dee.read_resource("voicefleet://notes/1")  # type: ignore[attr-defined]
