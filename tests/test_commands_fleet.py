"""Every tool's commands, said the way people say them, through the whole fleet.

gateway + LLM orchestrator + tools + TTS run as processes with the real
models; the headless client types each command like a user and checks which
tool ran (the ``tool_call`` event), what it answered, and that it was spoken.
No model chooses the tool here: the intent layer does, before any model.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest
from conftest import REDIS_URL, free_port
from fleet import mint_token, running_fleet

from audio_client.headless import HeadlessClient, TurnResult
from audio_client.protocol import StartOptions
from voicefleet.messages import new_id

pytestmark = [pytest.mark.fleet, pytest.mark.models]

WORKERS = {"llm": "llm_orchestrator", "tts": "tts_worker", "tools": "tools_worker"}


@dataclass
class CommandFleet:
    ws: str
    secret: str

    def token(self, sub: str) -> str:
        return mint_token(self.secret, sub)


@pytest.fixture(scope="module")
def command_fleet(redis_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CommandFleet]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not installed")
    docs = tmp_path_factory.mktemp("documents")
    (docs / "budget-review.md").write_text("Quarterly budget review: travel costs rose, hiring is frozen until May.\n")
    (docs / "pancakes.txt").write_text("Grandma's pancakes: flour, milk, two eggs, a pinch of salt.\n")
    env = dict(VF_TOOLS_DATA_DIR=str(tmp_path_factory.mktemp("tools-data")), VF_TOOLS_SEARCH_DIRS=str(docs),
               VF_TOOLS_WEB_PROVIDER="off", VF_LLM_MAX_TOKENS="24")
    with running_fleet(REDIS_URL, free_port(), f"vftest-{new_id()[:8]}", tmp_path_factory.mktemp("command-fleet-logs"),
                       WORKERS, **env) as fleet:
        yield CommandFleet(fleet.ws, fleet.secret)

def called(result: TurnResult) -> list[tuple[str, dict[str, object]]]:
    return [(t["name"], t["args"]) for t in result.tools if "args" in t]  # type: ignore[misc]


async def command(client: HeadlessClient, text: str, tool: str | None) -> TurnResult:
    result = await client.ask(text, timeout_s=60)
    calls = called(result)
    if tool is None:
        assert not calls, (text, calls)
    else:
        assert calls and calls[0][0] == tool, (text, calls, result.reply)
        assert result.reply.strip() and result.audio, (text, result.reply)  # answered, and spoken
    return result


async def test_every_tool_by_voice_commands(command_fleet: CommandFleet) -> None:
    async with HeadlessClient(command_fleet.ws, command_fleet.token("ada"), StartOptions(wake_word="")) as client:
        added = await command(client, "Hey Jarvis, take a note. Call the dentist on Friday.", "notes.add")
        assert "1" in added.reply
        await command(client, "Could you jot this down: buy oat milk.", "notes.add")
        listed = await command(client, "What notes do I have?", "notes.list")
        assert "dentist" in listed.reply.lower() and "oat milk" in listed.reply.lower()
        assert "dentist" in (await command(client, "Read note number one.", "notes.read")).reply.lower()
        assert "oat milk" in (await command(client, "Search my notes for milk.", "notes.search")).reply.lower()
        await command(client, "Delete the note about the dentist.", "notes.delete")
        assert "dentist" not in (await command(client, "Read my notes.", "notes.list")).reply.lower()

        await command(client, "Keep in mind that I prefer metric units.", "memory.remember")
        assert "metric" in (await command(client, "What do you remember about me?", "memory.list")).reply.lower()
        await command(client, "Forget that I prefer metric units.", "memory.forget")

        reminder = await command(client, "Remind me in half an hour to check the oven.", "timer.set")
        assert "check the oven" in reminder.reply.lower()
        await command(client, "Set a timer for five minutes for the pasta.", "timer.set")
        assert "pasta" in (await command(client, "What timers are running?", "timer.list")).reply.lower()
        cancelled = await command(client, "Cancel all my timers.", "timer.cancel")
        assert "2" in cancelled.reply or "two" in cancelled.reply.lower()

        tokyo = await command(client, "What time is it in Tokyo?", "time.now")
        assert "tokyo" in tokyo.reply.lower()
        found = await command(client, "Find the file about the quarterly budget review.", "files.search")
        assert "budget" in found.reply.lower()
        await command(client, "Search the web for a pancake recipe.", "web.search")

        # Chat reaches no tool, even when it uses a tool's words.
        await command(client, "How do I take good notes in class?", None)


async def test_commands_in_french(command_fleet: CommandFleet) -> None:
    options = StartOptions(wake_word="", language="fr")
    async with HeadlessClient(command_fleet.ws, command_fleet.token("zoe"), options) as client:
        await command(client, "Prends une note : acheter du pain.", "notes.add")
        await command(client, "Mets un minuteur de dix minutes pour les pâtes.", "timer.set")
        await command(client, "Annule tous les minuteurs.", "timer.cancel")
        await command(client, "Quelle heure est-il à Tokyo ?", "time.now")


def test_openai_sdk_streamed_chat_completion_runs_a_tool(command_fleet: CommandFleet) -> None:
    """The real ``openai`` SDK: the assistant as a chat model, its tools run server-side."""
    base_url = command_fleet.ws.replace("ws://", "http://", 1) + "/v1"
    client = openai.OpenAI(base_url=base_url, api_key=command_fleet.token("eve"), max_retries=0, timeout=60)
    stream = client.chat.completions.create(
        model="voicefleet", messages=[{"role": "user", "content": "Set a timer for 5 minutes for the pasta."}],
        stream=True,
    )
    chunks = list(stream)
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "5 minutes" in text or "five minutes" in text.lower(), text
    assert chunks[-1].choices[0].finish_reason == "stop"
    # What the assistant did rides along in each chunk's "voicefleet" field.
    done = [c.model_extra["voicefleet"] for c in chunks if (c.model_extra or {}).get("voicefleet")]
    calls = [d for d in done if d["type"] == "tool_call"]
    assert calls and calls[0]["name"] == "timer.set" and calls[0]["arguments"]["seconds"] == 300, done
    assert any(d["type"] == "tool_result" and d["ok"] for d in done)
    # The timer is the user's own, kept by the tools worker: a later request (not streamed) lists it.
    listed = client.chat.completions.create(
        model="voicefleet", messages=[{"role": "user", "content": "What timers are running?"}]
    )
    assert "pasta" in (listed.choices[0].message.content or "").lower()
    assert "voicefleet" in {m.id for m in client.models.list()}
