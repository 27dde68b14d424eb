"""Pure logic of the orchestrator: history trimming, the fallback chain (with fake backends), prompts."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from llama_index.core.base.llms.types import MessageRole
from llm_harness import (
    FakeBackend,
    eventually,
    messages,
    read_until_done,
    running_service,
    send_turn,
    speak_entries,
)

from llm_orchestrator.backends import Backend, BackendError, BackendsUnavailable, FallbackChain
from llm_orchestrator.history import History, HistoryEntry, trim
from llm_orchestrator.prompt import PromptBuilder
from llm_orchestrator.settings import LlmSettings
from llm_orchestrator.tools_client import memory_items
from llm_orchestrator.turn import join_parts
from voicefleet.bus import Bus
from voicefleet.messages import BARGE_IN_UNHEARD, ChatEntry, ReplyDelta, TurnRequest, now
from voicefleet.settings import BusSettings


async def run_chain(chain: FallbackChain) -> tuple[str, str, list[tuple[list[str], str]]]:
    notices: list[tuple[list[str], str]] = []

    async def on_fallback(failed: list[str], backend: Backend, reason: str) -> None:
        notices.append((list(failed), backend.name))

    text, used = "", ""
    async for backend, piece in chain.stream([], max_tokens=8, on_fallback=on_fallback):
        text += piece.text
        used = backend.name
    return text, used, notices


async def test_the_primary_answers_when_it_can() -> None:
    chain = FallbackChain([FakeBackend("a"), FakeBackend("b")])
    assert await run_chain(chain) == ("Hi there.", "a", [])


async def test_a_failing_primary_is_retried_then_replaced_then_skipped() -> None:
    primary, spare = FakeBackend("a", "down"), FakeBackend("b")
    chain = FallbackChain([primary, spare], retries=2, backoff_s=0.01, cooldown_s=60)
    assert await run_chain(chain) == ("Hi there.", "b", [(["a"], "b")])
    assert primary.calls == 3  # first try and two retries
    # Cooling down: the next turn goes straight to the spare, and still says so.
    assert await run_chain(chain) == ("Hi there.", "b", [(["a"], "b")])
    assert primary.calls == 3


async def test_a_silent_primary_times_out_before_its_first_token() -> None:
    chain = FallbackChain([FakeBackend("a", "silent"), FakeBackend("b")], first_token_timeout_s=0.05, retries=0)
    assert await run_chain(chain) == ("Hi there.", "b", [(["a"], "b")])


async def test_the_last_resort_gets_more_time() -> None:
    chain = FallbackChain([FakeBackend("a", "slow")], first_token_timeout_s=0.01, last_resort_timeout_s=5)
    assert await run_chain(chain) == ("Hi there.", "a", [])


async def test_no_backend_left() -> None:
    chain = FallbackChain([FakeBackend("a", "down"), FakeBackend("b", "down")], retries=0)
    with pytest.raises(BackendsUnavailable) as down:
        await run_chain(chain)
    assert not down.value.timed_out  # "can't reach my language model"


async def test_a_model_too_busy_to_start_is_told_apart_from_one_that_is_down() -> None:
    # Found by the soak on an overloaded machine: a queued turn timed out and the user heard "can't reach".
    chain = FallbackChain([FakeBackend("a", "silent")], first_token_timeout_s=0.05, last_resort_timeout_s=0.05,
                          retries=0)
    with pytest.raises(BackendsUnavailable) as busy:
        await run_chain(chain)
    assert busy.value.timed_out  # "too busy to answer that right now"


async def test_a_stall_mid_reply_ends_it_without_switching() -> None:
    spare = FakeBackend("b")
    chain = FallbackChain([FakeBackend("a", "stall"), spare], first_token_timeout_s=0.05, last_resort_timeout_s=0.05)
    with pytest.raises(BackendError):
        await run_chain(chain)
    assert spare.calls == 0


def test_history_is_trimmed_to_turns_and_tokens() -> None:
    entries = []
    for i in range(10):
        entries += [HistoryEntry("user", f"question {i}"), HistoryEntry("assistant", f"answer {i}")]
    entries.append(HistoryEntry("assistant", "", interrupted=True))  # cancelled before speaking
    kept = trim(entries, max_turns=3, token_budget=10_000)
    assert [e.content for e in kept] == [f"{kind} {i}" for i in (7, 8, 9) for kind in ("question", "answer")]
    few = trim(entries, max_turns=10, token_budget=20, count=lambda text: 1)  # 5 tokens per entry
    assert [e.content for e in few] == ["question 8", "answer 8", "question 9", "answer 9"]


def test_entries_survive_json_and_bad_entries_are_skipped() -> None:
    entry = HistoryEntry("assistant", "Partly said", "t1", 1.0, interrupted=True)
    import json
    from dataclasses import asdict

    assert HistoryEntry.from_json(json.dumps(asdict(entry))) == entry
    assert HistoryEntry.from_json(b"{broken") is None


def test_the_prompt_keeps_the_persona_first_and_adds_memory() -> None:
    builder = PromptBuilder("You are brief.\n")
    system = builder.system(["The user's name is Ada.", "Ada likes tea."])
    assert system.startswith("You are brief.") and "- The user's name is Ada.\n- Ada likes tea." in system
    assert builder.system([]) == "You are brief."
    history = [HistoryEntry("user", "Hi"), HistoryEntry("assistant", "Hello!")]
    roles = [m.role for m in builder.messages(system, history, "Bye")]
    assert roles == [MessageRole.SYSTEM, MessageRole.USER, MessageRole.ASSISTANT, MessageRole.USER]


@pytest.mark.parametrize(
    ("data", "items"),
    [
        ({"memories": [{"id": 1, "text": "a", "created": 1.0, "updated": 1.0},
                       {"id": 2, "text": "b", "created": 2.0, "updated": 2.0}]}, ["a", "b"]),
        ({"memories": []}, []),
        ({"items": [{"text": "a"}]}, []),  # not memory.list's shape: read through the catalogue, not guessed
        (["a"], []),
        (None, []),
    ],
)
def test_memory_items(data: Any, items: list[str]) -> None:
    assert memory_items(data) == items


def test_backend_names_are_checked() -> None:
    assert LlmSettings(backends="openai, llamacpp").backend_names == ["openai", "llamacpp"]
    with pytest.raises(ValueError, match="unknown backend"):
        _ = LlmSettings(backends="gpt5").backend_names


def test_history_leaves_in_blocks_so_the_prompt_prefix_stays_put() -> None:
    def conversation(turns: int) -> list[HistoryEntry]:
        entries = []
        for i in range(1, turns + 1):
            entries += [HistoryEntry("user", f"question {i}", n=i), HistoryEntry("assistant", f"answer {i}")]
        return entries

    def first_kept(turns: int) -> str:
        return trim(conversation(turns), max_turns=4, token_budget=10_000)[0].content

    assert [first_kept(t) for t in range(1, 9)] == [
        "question 1",
        "question 1",
        "question 1",
        "question 1",  # window not full yet
        "question 3",
        "question 3",  # then the oldest two leave together...
        "question 5",
        "question 5",  # ...and the prefix holds for two turns
    ]
    assert all(len(trim(conversation(t), 4, 10_000)) <= 8 for t in range(1, 20))  # never over 4 exchanges


async def test_user_messages_are_numbered_in_redis(bus: Bus) -> None:
    history = History(bus, max_turns=4, token_budget=10_000, ttl_s=60)
    for i in range(3):
        await history.append("s1", HistoryEntry("user", f"q{i}", f"t{i}"), HistoryEntry("assistant", f"a{i}", f"t{i}"))
    stored = await history.entries("s1")
    assert [e.n for e in stored if e.role == "user"] == [1, 2, 3]
    assert [e.content for e in await history.recent("s1")] == ["q0", "a0", "q1", "a1", "q2", "a2"]


class RecordingBackend(FakeBackend):
    """A fake backend that keeps the prompts it was given."""

    def __init__(self) -> None:
        super().__init__("recording", words=("Your cat is called Miso.",))
        self.prompts: list[list[str]] = []
        self.spoken: list[threading.Event | None] = []  # the turn's "first chunk went to speech" flags
        self.spoken_at_start: list[bool] = []

    async def stream(self, messages: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.prompts.append([str(m.content) for m in messages])
        self.spoken.append(kwargs.get("spoken"))
        self.spoken_at_start.append(self.spoken[-1] is not None and self.spoken[-1].is_set())
        async for piece in super().stream(messages, **kwargs):
            yield piece


async def test_a_text_only_turn_with_the_clients_history(bus: Bus, bus_settings: BusSettings) -> None:
    """An HTTP chat turn: the conversation comes with the turn, nothing is spoken, nothing is stored."""
    backend = RecordingBackend()
    async with running_service(bus_settings, [backend], intents=False, reply_checks=False):
        history = [ChatEntry(role="user", content="My cat is called Miso."),
                   ChatEntry(role="assistant", content="Noted.")]
        turn = await send_turn(bus, "chat-1", "What is my cat called?", user="ada", speak=False, history=history)
        entries = await read_until_done(bus, "chat-1", turn.turn_id)
    assert "Miso" in "".join(m.text for m in messages(entries, ReplyDelta))
    assert backend.prompts and "My cat is called Miso." in backend.prompts[0] and "Noted." in backend.prompts[0]
    assert await speak_entries(bus, turn.turn_id) == []  # no speech requests
    assert await bus.redis.llen(bus.keys.history("chat-1")) == 0  # the client keeps the conversation


async def test_the_model_is_told_once_the_first_chunk_went_to_speech(bus: Bus, bus_settings: BusSettings) -> None:
    """The in-process model serves the turns nobody hears yet first: the turn says when its reply is heard."""
    backend = RecordingBackend()
    async with running_service(bus_settings, [backend], intents=False, reply_checks=False):
        turn = await send_turn(bus, "spoken-1", "What is my cat called?")
        await read_until_done(bus, "spoken-1", turn.turn_id)
    assert backend.spoken_at_start == [False]
    flag = backend.spoken[0]
    assert flag is not None and flag.is_set()
    assert await speak_entries(bus, turn.turn_id)


# ---- a turn cancelled before any of its reply was heard -------------------------------------------


def test_the_words_that_went_on_join_the_sentence() -> None:
    assert join_parts("Okay, well I think we're ready to begin,", "Right?") == (
        "Okay, well I think we're ready to begin, right?"
    )
    assert join_parts("Set a timer for", "ten minutes.") == "Set a timer for ten minutes."
    assert join_parts("Stop.", "Right?") == "Stop. Right?"  # a sentence of its own stays one
    assert join_parts("Tell me", "I'm curious about Paris.") == "Tell me I'm curious about Paris."


async def has_speech(bus: Bus, turn_id: str) -> bool:
    return bool(await speak_entries(bus, turn_id))


async def unheard_turn(bus: Bus, sid: str, text: str) -> TurnRequest:
    """A turn the person went on from before its reply played: the STT worker's barge-in, then the next turn."""
    turn = await send_turn(bus, sid, text)
    await bus.cancel(sid, turn.turn_id, BARGE_IN_UNHEARD)
    await bus.cancel(sid, turn.turn_id, "new_turn")  # the next turn supersedes it: the first reason stays
    await read_until_done(bus, sid, turn.turn_id)
    return turn


def user_messages(prompt: list[Any]) -> list[str]:
    return [str(m.content) for m in prompt if m.role == MessageRole.USER]


async def test_a_turn_cancelled_before_its_reply_was_heard_is_answered_with_the_next(
    bus: Bus, bus_settings: BusSettings
) -> None:
    model = FakeBackend("fake", words=("Yes,", " let's", " begin."))
    history = History(bus, 8, 1200, 60)
    async with running_service(bus_settings, [model], intents=False):
        first = await unheard_turn(bus, "merge1", "Okay, well I think we're ready to begin,")
        kept = await history.entries("merge1")
        assert [(e.role, e.content, e.unheard) for e in kept] == [
            ("user", first.text, False),
            ("assistant", "", True),
        ]
        second = await send_turn(bus, "merge1", "Right?", source="text")
        await read_until_done(bus, "merge1", second.turn_id)
    merged = "Okay, well I think we're ready to begin, right?"
    assert user_messages(model.prompts[-1]) == [merged]  # one request, both parts
    kept = await history.entries("merge1")
    assert [(e.role, e.content, e.turn_id) for e in kept] == [
        ("user", merged, second.turn_id),
        ("assistant", "Yes, let's begin.", second.turn_id),
    ]


async def test_a_transcript_that_went_on_from_the_cancelled_turn_is_not_doubled(
    bus: Bus, bus_settings: BusSettings
) -> None:
    model = FakeBackend("fake")
    history = History(bus, 8, 1200, 60)
    async with running_service(bus_settings, [model], intents=False):
        first = await unheard_turn(bus, "merge2", "Okay, well I think we're ready to begin,")
        whole = "Okay, well, I think we're ready to begin, right?"  # the STT carry-on: one utterance
        second = await send_turn(bus, "merge2", whole, continues=first.turn_id)
        await read_until_done(bus, "merge2", second.turn_id)
    assert user_messages(model.prompts[-1]) == [whole]
    kept = [(e.role, e.content) for e in await history.entries("merge2")]
    assert kept == [("user", whole), ("assistant", "Hi there.")]


async def test_a_reply_that_was_heard_is_a_real_barge_in(bus: Bus, bus_settings: BusSettings) -> None:
    """Cancelled over its playback (or cancelled too long ago): the next turn is a request of its own."""
    history = History(bus, 8, 1200, 60)
    telling = FakeBackend("fake", "stall", words=("Once upon a time, there was a dragon.", " It", " slept."))
    async with running_service(bus_settings, [telling], intents=False, reply_checks=False):
        first = await send_turn(bus, "merge3", "Tell me a story.")
        await eventually(lambda: has_speech(bus, first.turn_id))
        await bus.cancel("merge3", first.turn_id, "barge_in")  # over its playback
        await read_until_done(bus, "merge3", first.turn_id)
    model = FakeBackend("fake")
    async with running_service(bus_settings, [model], intents=False, reply_checks=False):
        second = await send_turn(bus, "merge3", "Another one?")
        await read_until_done(bus, "merge3", second.turn_id)
    heard = " ".join(e.message.text for e in await speak_entries(bus, first.turn_id))  # type: ignore[union-attr]
    assert heard.startswith("Once upon a time")  # the heard part stays as it was
    assert user_messages(model.prompts[-1]) == ["Tell me a story.", "Another one?"]
    assert [(e.role, e.content) for e in await history.entries("merge3")] == [
        ("user", "Tell me a story."),
        ("assistant", heard),
        ("user", "Another one?"),
        ("assistant", "Hi there."),
    ]

    async with running_service(bus_settings, [model], intents=False, reply_checks=False, merge_unheard_s=0):
        await unheard_turn(bus, "merge4", "Okay, well I think we're ready to begin,")
        third = await send_turn(bus, "merge4", "Right?")
        await read_until_done(bus, "merge4", third.turn_id)
    # Merging off: the two parts are two requests (as before this existed).
    assert user_messages(model.prompts[-1]) == ["Okay, well I think we're ready to begin,", "Right?"]


async def test_an_unheard_exchange_too_old_stays_in_the_history(bus: Bus) -> None:
    history = History(bus, 8, 1200, 60)
    await bus.redis.delete(bus.keys.history("merge5"))
    await history.append(
        "merge5",
        HistoryEntry("user", "Okay,", "t1", at=now() - 100),
        HistoryEntry("assistant", "", "t1", at=now() - 100, interrupted=True, unheard=True),
    )
    assert await history.take_unheard("merge5", "t2", 20) is None
    assert await history.take_unheard("merge5", "t1", 1000) is None  # the same turn, redelivered
    taken = await history.take_unheard("merge5", "t2", 1000)
    assert taken is not None and taken.content == "Okay," and await history.entries("merge5") == []
