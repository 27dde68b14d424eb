"""The tools worker on the real bus: notes, memory, per-user isolation, timers, web search, reclaim."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import free_port
from tools_harness import call, indexed, running, tools_settings

from tools_worker.embeddings import MiniLMEmbedding, load_embedder
from tools_worker.web import OFFLINE, DdgsProvider, Reachability
from tools_worker.worker import ToolsService
from voicefleet.bus import Bus
from voicefleet.catalogue import CATALOGUE, Refusal, read_result
from voicefleet.messages import Notice, SpeakRequest, ToolCall, ToolResult
from voicefleet.settings import BusSettings

pytestmark = [pytest.mark.models, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedding:
    return load_embedder()


async def test_notes_and_memory_by_voice(bus: Bus, bus_settings: BusSettings, tmp_path: Path,
                                         embedder: MiniLMEmbedding) -> None:
    async with running(tools_settings(bus_settings, tmp_path), embedder):
        added = await call(bus, "notes.add", {"text": "Buy oat milk and eggs"})
        assert added.ok and added.name == "notes.add" and added.data["note"]["id"] == 1
        await call(bus, "notes.add", {"text": "Call the dentist about the crown on Tuesday"})
        await call(bus, "notes.add", {"text": "Book train tickets to Lyon"})

        listed = await call(bus, "notes.list")
        assert listed.ok and "3 notes" in listed.text and len(listed.data["notes"]) == 3

        found = await call(bus, "notes.search", {"query": "groceries to buy"})
        assert found.data["notes"][0]["text"] == "Buy oat milk and eggs"  # by meaning, not words

        read = await call(bus, "notes.read", {"id": "", "query": "dentist"})  # the orchestrator's shape
        assert "crown" in read.text
        latest = await call(bus, "notes.read")
        assert "Lyon" in latest.text

        deleted = await call(bus, "notes.delete", {"query": "train tickets"})
        assert deleted.ok and "Lyon" in deleted.text
        gone = await call(bus, "notes.read", {"id": 3})
        assert not gone.ok and "number 3" in gone.text

        fact = await call(bus, "memory.remember", {"text": "The user is vegetarian"})
        assert fact.ok
        again = await call(bus, "memory.remember", {"text": "the user is vegetarian"})
        assert again.data["duplicate"] is True
        await call(bus, "memory.remember", {"text": "The user's sister is called Ada"})
        updated = await call(bus, "memory.update", {"id": "#2", "text": "The user's sister is called Adele"})
        assert updated.ok and "Adele" in updated.text
        forgot = await call(bus, "memory.forget", {"query": "vegetarian"})
        assert forgot.ok
        memories = await call(bus, "memory.list")
        assert [m["text"] for m in memories.data["memories"]] == ["The user's sister is called Adele"]


async def test_bad_calls_get_a_sentence(bus: Bus, bus_settings: BusSettings, tmp_path: Path,
                                        embedder: MiniLMEmbedding) -> None:
    async with running(tools_settings(bus_settings, tmp_path), embedder):
        unknown = await call(bus, "notes.burn", {})
        assert not unknown.ok and "notes.burn" in unknown.text
        missing = await call(bus, "notes.add", {})
        assert not missing.ok and "text" in missing.text
        vague = await call(bus, "notes.delete", {})
        assert not vague.ok and vague.text.startswith("Which note")
        nobody = await call(bus, "notes.list", user="")
        assert not nobody.ok
        assert (await call(bus, "timer.set", {"seconds": "soon"})).ok is False
        clock = await call(bus, "time.now", {"timezone": "Asia/Tokyo"})
        assert clock.ok and clock.text.startswith("It's ") and clock.text.endswith(" in Tokyo.")
        assert not (await call(bus, "time.now", {"timezone": "Mars/Olympus"})).ok


async def test_users_cannot_see_or_change_each_others_data(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    async with running(tools_settings(bus_settings, tmp_path), embedder):
        await call(bus, "notes.add", {"text": "Alice's secret surprise party plan"}, user="alice")
        await call(bus, "memory.remember", {"text": "Alice is allergic to peanuts"}, user="alice")
        timer = await call(bus, "timer.set", {"seconds": 600, "label": "tea"}, user="alice")
        timer_id = timer.data["timer"]["id"]

        for name in ("notes.list", "memory.list", "timer.list"):
            seen = await call(bus, name, user="bob")
            assert seen.ok and not any(seen.data.values()), (name, seen.data)
        assert not (await call(bus, "notes.read", {"id": 1}, user="bob")).ok
        assert not (await call(bus, "notes.search", {"query": "surprise party"}, user="bob")).data["notes"]
        assert not (await call(bus, "notes.delete", {"id": 1}, user="bob")).ok
        assert not (await call(bus, "notes.delete", {"query": "surprise party"}, user="bob")).ok
        assert not (await call(bus, "memory.forget", {"id": 1}, user="bob")).ok
        assert not (await call(bus, "memory.update", {"id": 1, "text": "hacked"}, user="bob")).ok
        assert not (await call(bus, "timer.cancel", {"id": timer_id}, user="bob")).ok
        assert not (await call(bus, "timer.cancel", {"label": "tea"}, user="bob")).ok

        assert len((await call(bus, "notes.list", user="alice")).data["notes"]) == 1
        assert (await call(bus, "memory.list", user="alice")).data["memories"][0]["text"].endswith("peanuts")
        assert (await call(bus, "timer.list", user="alice")).data["timers"][0]["id"] == timer_id
        cancelled = await call(bus, "timer.cancel", {"label": "tea timer"}, user="alice")
        assert cancelled.ok and "tea timer" in cancelled.text


async def test_a_redelivered_call_is_answered_without_doing_it_twice(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    async with running(tools_settings(bus_settings, tmp_path), embedder):
        first = await call(bus, "notes.add", {"text": "water the plants"}, call_id="same-call")
        second = await call(bus, "notes.add", {"text": "water the plants"}, call_id="same-call")
        assert first.text == second.text
        assert len((await call(bus, "notes.list")).data["notes"]) == 1


async def test_a_call_held_by_a_dead_worker_is_answered(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    # A worker took the call and died before answering: it sits pending under its name.
    await bus.ensure_group(bus.keys.tools, "tools")
    msg = ToolCall(user="alice", name="notes.add", args={"text": "survives a crash"})
    await bus.enqueue(bus.keys.tools, msg)
    taken = await bus.read_group(bus.keys.tools, "tools", "tools-dead-1", count=10, block_ms=100)
    assert len(taken) == 1
    async with running(tools_settings(bus_settings, tmp_path), embedder):
        result = await bus.wait_reply(msg.call_id, 15)
        assert isinstance(result, ToolResult) and result.ok
        assert (await call(bus, "notes.list")).data["notes"][0]["text"] == "survives a crash"


def _fits(result: ToolResult) -> ToolResult:
    """The result's data is what the catalogue promises for it (a Refusal when it was refused)."""
    if result.ok:
        assert read_result(result.name, result.data) is not None, (result.name, result.data)
    else:
        Refusal.model_validate(result.data)
    return result


def _offline(service: ToolsService) -> None:
    """Web search through ddgs on a machine with no internet: the probe's host refuses every connection."""
    assert service.web is not None
    service.web.provider = DdgsProvider(2.0, Reachability("127.0.0.1", free_port(), timeout_s=1.5))


async def test_the_running_worker_serves_exactly_the_catalogue(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    async with running(tools_settings(bus_settings, tmp_path), embedder) as service:
        assert {name: tool.spec for name, tool in service.registry.tools.items()} == CATALOGUE
        assert all(tool.spec is CATALOGUE[name] for name, tool in service.registry.tools.items())


async def test_every_tool_answers_the_intent_layers_calls(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "budget-review.md").write_text("Quarterly budget review: travel costs rose, hiring is frozen.")
    settings = tools_settings(bus_settings, tmp_path / "data", search_dirs=[folder])
    called: set[str] = set()

    async def ask(name: str, args: dict[str, object] | None = None, ok: bool = True) -> ToolResult:
        result = _fits(await call(bus, name, args))
        assert result.ok is ok, (name, args, result.text)
        called.add(name)
        return result

    async with running(settings, embedder) as service:
        _offline(service)
        assert (await ask("notes.add", {"text": " Call the dentist on Friday "})).text == "Noted. That's note 1."
        await ask("notes.add", {"text": "Book the train tickets for Lisbon"})
        assert "2 notes" in (await ask("notes.list", {})).text
        assert "Lisbon" in (await ask("notes.search", {"query": "train"})).text
        assert "dentist" in (await ask("notes.read", {"id": "note 1"})).text
        assert "dentist" in (await ask("notes.read", {"query": "dentist"})).text
        assert "Lisbon" in (await ask("notes.read", {})).text  # the latest
        assert "Lisbon" in (await ask("notes.delete", {"query": "train tickets"})).text
        assert "dentist" in (await ask("notes.delete", {"id": "#1"})).text
        assert (await ask("notes.delete", {"id": 1}, ok=False)).data["error"] == "not_found"

        assert (await ask("memory.remember", {"text": "I prefer metric units"})).text == "Okay, I'll remember that."
        assert "metric" in (await ask("memory.list", {})).text
        assert "imperial" in (await ask("memory.update", {"id": "1", "text": "I prefer imperial units"})).text
        assert "imperial" in (await ask("memory.forget", {"query": "units"})).text
        await ask("memory.remember", {"text": "My sister is Ada"})
        assert "Ada" in (await ask("memory.forget", {"id": 2})).text

        await indexed(service, 1)
        found = await ask("files.search", {"query": "the quarterly budget review"})
        assert found.data["results"][0]["name"] == "budget-review.md"
        assert (await ask("web.search", {"query": "pancake recipe"}, ok=False)).text == OFFLINE

        assert (await ask("timer.set", {"seconds": 300.0, "label": "pasta"})).text == "Pasta timer set for 5 minutes."
        reminder = await ask("timer.set", {"seconds": 1800, "label": "check the oven"})
        assert reminder.text == "Okay, I'll remind you to check the oven in 30 minutes."
        assert reminder.data["timer"]["reminder"] is True
        listed = await ask("timer.list", {})
        assert "pasta timer" in listed.text and "reminder to check the oven" in listed.text
        assert (await ask("timer.cancel", {"label": "pasta"})).text == "I cancelled your pasta timer."
        cancelled = await ask("timer.cancel", {"id": reminder.data["timer"]["id"]})
        assert cancelled.text == "I cancelled your reminder to check the oven."

        assert (await ask("time.now", {})).text.startswith("It's ")
        assert (await ask("time.now", {"timezone": "Asia/Tokyo"})).text.endswith(" in Tokyo.")
        unknown = await ask("time.now", {"timezone": "Mars/Olympus"}, ok=False)
        assert unknown.text.startswith("I don't know a time zone called Mars/Olympus")
    assert called == set(CATALOGUE)


async def test_cancel_all_timers_and_a_reminder_says_what_it_was_for(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    await _open_session(bus, "s-erin", "erin")
    async with running(tools_settings(bus_settings, tmp_path), embedder):
        for seconds, label in ((600, "pasta"), (900, "tea"), (1200, None)):
            assert (await call(bus, "timer.set", {"seconds": seconds, "label": label}, user="erin")).ok
        await call(bus, "timer.set", {"seconds": 600, "label": "bob's"}, user="bob")
        vague = _fits(await call(bus, "timer.cancel", {}, user="erin"))
        assert not vague.ok and vague.text.startswith("You have 3 timers: which one")
        assert len(vague.data["candidates"]) == 3

        every = _fits(await call(bus, "timer.cancel", {"all": True}, user="erin"))
        assert every.ok and every.text == "I cancelled your 3 timers." and len(every.data["cancelled"]) == 3
        assert (await call(bus, "timer.list", user="erin")).data["timers"] == []
        assert len((await call(bus, "timer.list", user="bob")).data["timers"]) == 1  # only the user's own
        none_left = _fits(await call(bus, "timer.cancel", {"all": True}, user="erin"))
        assert none_left.ok and none_left.text == "You don't have any timers running."

        # "Remind me in a second to check the oven": the intent layer sends the action as the label.
        await call(bus, "timer.set", {"seconds": 1, "label": "check the oven"}, user="erin")
        assert (await _first_notice(bus, "s-erin")).message == "Time to check the oven."


async def test_web_search_without_internet_says_so_in_one_sentence(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    # The time it takes is measured by bench/tools_bench.py --web-only, on this machine's real network.
    async with running(tools_settings(bus_settings, tmp_path, web_provider="ddgs"), embedder) as service:
        assert service.web is not None and service.web.provider is not None
        assert service.web.provider.name == "ddgs"
        _offline(service)
        result = _fits(await call(bus, "web.search", {"query": "pancake recipe"}))
        assert not result.ok and result.data["error"] == "offline"
        assert result.text == "I can't reach the internet right now, so I can't search the web."


async def _first_notice(bus: Bus, sid: str) -> Notice:
    """The first Notice on a session's out stream (a timer going off), within 10 s."""
    last = "0"
    async with asyncio.timeout(10):
        while True:
            for entry in await bus.read(bus.keys.out(sid), last, block_ms=500):
                last = entry.id
                if isinstance(entry.message, Notice):
                    return entry.message


async def _open_session(bus: Bus, sid: str, user: str) -> None:
    await bus.redis.hset(bus.keys.session(sid), mapping={
        "user": user, "voice": "en_US-joe-medium", "speech_rate": "1.2", "output_sample_rate": "24000",
    })
    await bus.redis.zadd(bus.keys.user_sessions(user), {sid: time.time()})


async def test_a_timer_speaks_on_the_users_sessions(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    await _open_session(bus, "s-alice", "alice")
    await _open_session(bus, "s-bob", "bob")
    async with running(tools_settings(bus_settings, tmp_path), embedder):
        set_ = await call(bus, "timer.set", {"seconds": 2, "label": "pasta"}, session_id="s-alice")
        assert set_.ok and set_.text == "Pasta timer set for 2 seconds."
        listed = await call(bus, "timer.list")
        assert "pasta timer" in listed.text

        notice = await _first_notice(bus, "s-alice")
        assert notice.code == "timer" and notice.message == "Your 2 second pasta timer is done."

        spoken = [e.message for e in await bus.read(bus.keys.speak, "0", block_ms=100)]
        assert len(spoken) == 1 and isinstance(spoken[0], SpeakRequest)
        speak = spoken[0]
        assert (speak.session_id, speak.turn_id, speak.seq, speak.final) == ("s-alice", notice.turn_id, 0, True)
        assert (speak.text, speak.voice, speak.speech_rate, speak.sample_rate) == (
            notice.message, "en_US-joe-medium", 1.2, 24000)
        assert await bus.read(bus.keys.out("s-bob"), "0", block_ms=10) == []  # not Bob's timer
        assert (await call(bus, "timer.list")).data["timers"] == []


async def test_two_workers_fire_each_timer_once(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    await _open_session(bus, "s-dan", "dan")
    async with (
        running(tools_settings(bus_settings, tmp_path / "a"), embedder) as first,
        running(tools_settings(bus_settings, tmp_path / "b"), embedder) as second,
    ):
        for i in range(6):
            assert (await call(bus, "timer.set", {"seconds": 1, "label": f"egg {i}"}, user="dan")).ok
        notices: list[Notice] = []
        last = "0"
        async with asyncio.timeout(10):
            while len(notices) < 6:
                for entry in await bus.read(bus.keys.out("s-dan"), last, block_ms=500):
                    last = entry.id
                    notices.append(entry.message)
        await asyncio.sleep(0.5)  # time for a duplicate to show up, if any
        notices += [e.message for e in await bus.read(bus.keys.out("s-dan"), last, block_ms=10)]
        assert sorted(n.message for n in notices) == [f"Your 1 second egg {i} timer is done." for i in range(6)]
        assert len(await bus.read(bus.keys.speak, "0", block_ms=10)) == 6
        assert first.timers.fired + second.timers.fired == 6


async def test_a_timer_with_no_open_session_waits_for_the_user(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    async with running(tools_settings(bus_settings, tmp_path), embedder):
        await call(bus, "timer.set", {"seconds": 1}, user="carol")
        async with asyncio.timeout(10):
            while not await bus.redis.llen(bus.keys.pending_notices("carol")):  # noqa: ASYNC110 - polls Redis
                await asyncio.sleep(0.1)
        pending = json.loads(await bus.redis.lindex(bus.keys.pending_notices("carol"), 0))
        assert pending["type"] == "notice" and pending["message"] == "Your 1 second timer is done."


class _Searxng(BaseHTTPRequestHandler):
    """Answers like SearxNG's JSON API."""

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path != "/search" or query.get("format") != ["json"]:
            self.send_error(403)
            return
        q = query["q"][0]
        body = json.dumps({"query": q, "results": [
            {"title": f"Result {i} about {q}", "url": f"https://example.org/{i}", "content": f"Snippet {i}."}
            for i in range(1, 8)
        ] + [{"title": "not a web link", "url": "javascript:alert(1)", "content": ""}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def searxng() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Searxng)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_web_search_through_searxng(bus: Bus, bus_settings: BusSettings, tmp_path: Path,
                                          embedder: MiniLMEmbedding, searxng: str) -> None:
    settings = tools_settings(bus_settings, tmp_path, searxng_url=searxng, web_max_results=3)
    async with running(settings, embedder):
        result = await call(bus, "web.search", {"query": "voice assistants"})
        assert result.ok and result.data["untrusted"] is True
        assert [r["url"] for r in result.data["results"]] == [f"https://example.org/{i}" for i in (1, 2, 3)]
        assert "Result 1 about voice assistants" in result.text


async def test_web_search_down_or_off_says_so(bus: Bus, bus_settings: BusSettings, tmp_path: Path,
                                              embedder: MiniLMEmbedding) -> None:
    down = tools_settings(bus_settings, tmp_path, searxng_url=f"http://127.0.0.1:{free_port()}", web_timeout_s=2)
    async with running(down, embedder):
        result = await call(bus, "web.search", {"query": "anything"})
        assert not result.ok and result.text == "I can't reach the web search service right now."
    async with running(tools_settings(bus_settings, tmp_path), embedder):
        result = await call(bus, "web.search", {"query": "anything"})
        assert not result.ok and result.text == "Web search is turned off on this assistant."
