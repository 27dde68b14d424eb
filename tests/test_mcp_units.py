"""Pure logic of the MCP work: settings, speakable answers, schemas offered to a model, intent files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from llm_orchestrator.function_tools import function_name, function_tools, tool_name
from llm_orchestrator.intents import IntentParser
from tools_worker.mcp_client import clip, speakable
from tools_worker.settings import ToolsSettings
from voicefleet.remote_tools import RemoteTool, split_name

TIME = {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}


def settings(servers: object, **more: object) -> ToolsSettings:
    value = servers if isinstance(servers, str) else json.dumps(servers)
    return ToolsSettings(mcp_servers=value, search_dirs="", **more)  # type: ignore[arg-type]


def test_servers_come_as_json_or_as_claude_desktops_file(tmp_path: Path) -> None:
    assert settings({"time": TIME}).mcp_servers["time"].command == "mcp-server-time"
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps({"mcpServers": {"time": TIME, "web": {"url": "https://x/mcp",
                                                                      "headers": {"Authorization": "Bearer t"}}}}))
    loaded = settings(str(config)).mcp_servers
    assert loaded["web"].headers == {"Authorization": "Bearer t"} and loaded["time"].args == TIME["args"]
    assert settings("").mcp_servers == {}
    example = settings(str(Path(__file__).resolve().parent.parent / "docs" / "examples" / "mcp_servers.json"))
    assert set(example.mcp_servers) == {"time", "files", "wiki"}  # the README's example stays valid


@pytest.mark.parametrize(
    ("servers", "words"),
    [
        ({"Time Server": TIME}, "lower-case"),
        ({"time": {**TIME, "url": "http://x/mcp"}}, "not both"),
        ({"time": {"args": ["x"]}}, "either 'command'"),
        ({"time": {**TIME, "timout_s": 1}}, "timout_s"),
        ({"time": {**TIME, "timeout_s": 9}}, "below VF_TOOLS_CALL_TIMEOUT_S"),
        ("{not json", "not valid JSON"),
        ("/nowhere/servers.json", "cannot read"),
    ],
)
def test_bad_server_settings_are_refused_with_a_reason(servers: object, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        settings(servers)


def test_allow_and_deny_and_per_server_limits() -> None:
    s = settings({"time": {**TIME, "allow": ["get_current_time", "convert_time"], "deny": ["convert_time"],
                           "max_result_chars": 100}}, mcp_timeout_s=1.0)
    server = s.mcp_servers["time"]
    assert server.offers("get_current_time") and not server.offers("convert_time") and not server.offers("other")
    assert s.mcp_result_limit(server) == 100 and s.mcp_call_timeout(server) == 1.0


def test_answers_are_made_speakable_and_cut() -> None:
    assert speakable('{"a_b": true, "c": [1, 2], "d": null}') == "a b: yes; c: 1, 2; d: none."
    assert speakable("plain words") == "plain words"
    assert clip("one two three four", 9) == "one two…"
    assert clip("short", 9) == "short"


def test_a_model_is_offered_mcp_tools_with_their_own_schemas() -> None:
    schema = {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}
    remote = {"mcp.time.get_current_time": RemoteTool(name="mcp.time.get_current_time", server="time",
                                                      tool="get_current_time", description="Now.", input_schema=schema)}
    tools = {t.metadata.get_name(): t for t in function_tools(remote)}
    offered = tools["mcp_time_get_current_time"].metadata
    assert offered.get_parameters_dict() == schema
    assert offered.to_openai_tool()["function"]["parameters"] == schema
    assert "notes_add" in tools  # the assistant's own tools stay
    assert tool_name("mcp_time_get_current_time", remote) == "mcp.time.get_current_time"
    assert tool_name("mcp_time_get_current_time") is None  # not published: not ours
    assert function_name("mcp.a-b.x.y") == "mcp_a-b_x_y"
    assert split_name("mcp.time.get_current_time") == ("time", "get_current_time")
    assert split_name("notes.add") is None and split_name("mcp.time") is None


def test_intent_files_add_commands_for_mcp_tools(tmp_path: Path) -> None:
    extra = tmp_path / "mcp_time.en.yaml"
    extra.write_text("""\
language: en
intents:
  mcp.time.get_current_time:
    data:
      - sentences:
          - "ask the time server (for|about) the time in {place}"
      - sentences:
          - "what does the time server say"
        slots:
          timezone: UTC
""")
    parser = IntentParser(languages=("en",), extra_files=(extra,))
    tokyo = parser.parse("Hey Jarvis, ask the time server for the time in Tokyo.")
    assert tokyo is not None and (tokyo.tool, tokyo.args) == ("mcp.time.get_current_time", {"timezone": "Asia/Tokyo"})
    fixed = parser.parse("What does the time server say?")
    assert fixed is not None and fixed.args == {"timezone": "UTC"}
    own = parser.parse("What time is it in Tokyo?")
    assert own is not None and own.tool == "time.now"  # the shipped templates are untouched
    without = IntentParser(languages=("en",)).parse("ask the time server for the time in Tokyo")
    assert without is None or without.tool != "mcp.time.get_current_time"


def test_an_intent_file_must_name_its_language(tmp_path: Path) -> None:
    extra = tmp_path / "bad.yaml"
    extra.write_text("intents: {}\n")
    with pytest.raises(ValueError, match="language"):
        IntentParser(languages=("en",), extra_files=(extra,))
