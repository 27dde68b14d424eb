"""One llama.cpp model shared by several sessions: contexts, order of the token steps, cancels.

The first tests drive the model thread's scheduler with plain Python generators
(the order of steps is the logic under test, and a model would make it depend
on speed); the others run the packaged SmolLM2.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llm_harness import load_llama

from llm_orchestrator.backends import LlamaCppBackend
from llm_orchestrator.backends.llamacpp import _END, URGENT_TOKENS, _Context, _prompt_key, _Scheduler, _shared
from llm_orchestrator.prompt import PromptBuilder
from llm_orchestrator.settings import DEFAULT_PERSONA


class Recorder:
    """What the model thread handed out, in order, as (stream name, piece)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self.ended: dict[str, threading.Event] = {}

    def put(self, name: str) -> Callable[[Any], None]:
        self.ended[name] = threading.Event()

        def put(item: Any) -> None:
            self.items.append((name, item))
            if item is _END or isinstance(item, Exception):
                self.ended[name].set()

        return put

    def names(self) -> list[str]:
        return [name for name, item in self.items if isinstance(item, str)]


def pieces(name: str, count: int, before: Callable[[int], None] | None = None) -> Callable[[Any], Iterator[str]]:
    def open_pieces(llama: Any) -> Iterator[str]:
        for i in range(count):
            if before is not None:
                before(i)
            yield f"{name}{i} "

    return open_pieces


def stream(recorder: Recorder, name: str, open_pieces: Any, key: str = "", **options: Any) -> dict[str, Any]:
    return {
        "key": key or name,
        "open_pieces": open_pieces,
        "put": recorder.put(name),
        "cancel": options.pop("cancel", threading.Event()),
        "spoken": options.pop("spoken", None),
        "background": options.pop("background", False),
    }


def held(scheduler: _Scheduler) -> threading.Event:
    """Hold the model thread until the returned event is set (to submit several streams at one moment)."""
    release = threading.Event()
    scheduler.call(release.wait)
    return release


def test_a_reply_nobody_hears_yet_goes_before_one_being_spoken() -> None:
    recorder = Recorder()
    scheduler = _Scheduler([_Context(i, None) for i in range(2)])
    arrived = threading.Event()
    spoken = threading.Event()

    def first_step_of_a(i: int) -> None:
        if i == 3:  # "a" is being spoken; now "b" arrives
            spoken.set()
            arrived.wait(10)

    try:
        scheduler.submit(stream(recorder, "a", pieces("a", 30, first_step_of_a), spoken=spoken))
        assert spoken.wait(10)
        scheduler.submit(stream(recorder, "b", pieces("b", 10)))
        arrived.set()
        assert recorder.ended["a"].wait(10) and recorder.ended["b"].wait(10)
    finally:
        scheduler.close()
    names = recorder.names()
    # "a" finishes the step it was in, then "b" runs until it is done (10 < URGENT_TOKENS) before "a" goes on.
    assert names == ["a"] * 4 + ["b"] * 10 + ["a"] * 26
    assert scheduler.running == 0


def test_waiting_replies_go_oldest_first_and_replies_being_spoken_take_turns() -> None:
    recorder = Recorder()
    scheduler = _Scheduler([_Context(i, None) for i in range(3)])
    said = threading.Event()
    said.set()
    try:
        release = held(scheduler)
        scheduler.submit(stream(recorder, "x", pieces("x", 3), spoken=said))
        scheduler.submit(stream(recorder, "y", pieces("y", 3), spoken=said))
        scheduler.submit(stream(recorder, "n", pieces("n", 4)))
        release.set()
        for name in "xyn":
            assert recorder.ended[name].wait(10)
    finally:
        scheduler.close()
    assert recorder.names() == ["n"] * 4 + ["x", "y"] * 3


def test_a_reply_that_never_says_it_was_spoken_stops_going_first() -> None:
    recorder = Recorder()
    scheduler = _Scheduler([_Context(i, None) for i in range(2)])
    said = threading.Event()
    said.set()
    try:
        release = held(scheduler)
        scheduler.submit(stream(recorder, "u", pieces("u", URGENT_TOKENS + 4)))
        scheduler.submit(stream(recorder, "s", pieces("s", 8), spoken=said))
        release.set()
        assert recorder.ended["u"].wait(10) and recorder.ended["s"].wait(10)
    finally:
        scheduler.close()
    names = recorder.names()
    assert names[:URGENT_TOKENS] == ["u"] * URGENT_TOKENS
    assert names[URGENT_TOKENS : URGENT_TOKENS + 8] == ["s", "u"] * 4  # then turns, the one that waited first


def test_background_work_waits_for_replies() -> None:
    recorder = Recorder()
    scheduler = _Scheduler([_Context(i, None) for i in range(2)])
    said = threading.Event()
    said.set()
    try:
        release = held(scheduler)
        scheduler.submit(stream(recorder, "warm", pieces("warm", 1), background=True))
        scheduler.submit(stream(recorder, "r", pieces("r", 3), spoken=said))
        release.set()
        assert recorder.ended["warm"].wait(10) and recorder.ended["r"].wait(10)
    finally:
        scheduler.close()
    assert recorder.names() == ["r"] * 3 + ["warm"]


def test_a_cancelled_reply_lets_go_of_its_context_and_the_others_go_on() -> None:
    recorder = Recorder()
    scheduler = _Scheduler([_Context(0, None)])  # one context: "later" needs the one "gone" holds
    gone, closed = threading.Event(), threading.Event()

    def gone_pieces(llama: Any) -> Iterator[str]:
        try:
            for i in range(1000):
                if i == 5:
                    gone.set()  # cancelled by its consumer from another thread
                yield f"g{i} "
        finally:
            closed.set()

    try:
        scheduler.submit(stream(recorder, "gone", gone_pieces, cancel=gone))
        scheduler.submit(stream(recorder, "later", pieces("l", 3)))
        assert recorder.ended["later"].wait(10)
        assert closed.is_set() and scheduler.running == 0
        assert scheduler.call(lambda: "free").result(10) == "free"
    finally:
        scheduler.close()
    names = recorder.names()
    assert names.count("gone") <= 6 and names[-3:] == ["later"] * 3
    assert not recorder.ended["gone"].is_set()  # nobody listens to a cancelled reply any more


def test_a_session_gets_back_the_context_that_holds_its_conversation() -> None:
    recorder = Recorder()
    contexts = [_Context(i, None) for i in range(3)]
    system = {"role": "system", "content": "You are a helpful assistant."}
    first = [system, {"role": "user", "content": "Tell me about the sun."}]
    other = [system, {"role": "user", "content": "How do I make tea?"}]
    contexts[1].key = _prompt_key(first) + "The sun is a star."
    contexts[2].key = _prompt_key(other) + "Boil water."
    contexts[1].prompt_len, contexts[2].prompt_len = len(_prompt_key(first)), len(_prompt_key(other))
    contexts[1].used, contexts[2].used = 5, 6  # context 0 is the least recently used one
    said = {"role": "assistant", "content": "The sun is a star."}
    follow_up = [*first, said, {"role": "user", "content": "How hot?"}]
    scheduler = _Scheduler(contexts)
    seen: list[int] = []

    def which(llama: Any) -> Iterator[str]:
        seen.append(next(c.index for c in contexts if c.stream is not None and c.stream.key == key))
        yield "ok"

    try:
        key = _prompt_key(follow_up)
        scheduler.submit(stream(recorder, "follow", which, key=key))
        assert recorder.ended["follow"].wait(10)
        key = _prompt_key([system, {"role": "user", "content": "Why is the sky blue?"}])
        scheduler.submit(stream(recorder, "new", which, key=key))
        assert recorder.ended["new"].wait(10)
    finally:
        scheduler.close()
    assert seen == [1, 0]  # its own conversation; a new session: the least recently used context
    assert contexts[1].key == _prompt_key(follow_up) + "ok"
    # Warming a conversation for its next turn: the next turn's prompt continues it.
    warmed = _prompt_key([*follow_up, {"role": "assistant", "content": "Hot."}, {"role": "user", "content": ""}])
    next_turn = [*follow_up, {"role": "assistant", "content": "Hot."}, {"role": "user", "content": "Why?"}]
    assert _prompt_key(next_turn).startswith(warmed)
    assert _shared("abcd", "abxy") == 2 and _shared("ab", "abc") == 2 and _shared("", "a") == 0


# ---- the real model -------------------------------------------------------------------

PROMPT = PromptBuilder(DEFAULT_PERSONA.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppBackend]:
    backend = load_llama(max_tokens=40)
    yield backend
    backend._llm.shutdown()


def ask(text: str, history: list[Any] | None = None) -> list[Any]:
    return PROMPT.messages(PROMPT.system(), history or [], text)


async def reply(
    backend: LlamaCppBackend,
    text: str,
    max_tokens: int = 40,
    spoken: threading.Event | None = None,
    log: list[str] | None = None,
    stop_after: int | None = None,
) -> str:
    out = ""
    count = 0
    async for piece in backend.stream(ask(text), max_tokens=max_tokens, seed=1, spoken=spoken):
        out += piece.text
        count += 1
        if log is not None:
            log.append(text)
        if spoken is not None and not spoken.is_set() and out.strip():
            spoken.set()  # as the orchestrator does once the first chunk is out (here: the first word)
        if stop_after is not None and count >= stop_after:
            break  # closing the stream cancels the reply
    return out


@pytest.mark.models
async def test_two_sessions_streaming_at_once_get_the_replies_they_get_alone(llama: LlamaCppBackend) -> None:
    questions = ["Why is the sky blue?", "How do I make a cup of tea?"]
    alone = [await reply(llama, q) for q in questions]
    together = await asyncio.gather(*(reply(llama, q) for q in questions))
    assert all(a.strip() for a in alone)
    assert list(together) == alone
    assert llama._llm.running == 0


@pytest.mark.models
async def test_cancelling_one_reply_leaves_the_other_as_it_was(llama: LlamaCppBackend) -> None:
    kept = "Tell me about the moon."
    alone = await reply(llama, kept)
    cut, whole = await asyncio.gather(
        reply(llama, "Write a long story about a dragon.", max_tokens=200, stop_after=5), reply(llama, kept)
    )
    assert whole == alone
    assert len(cut) < len(whole) + 200  # stopped, not run to 200 tokens
    await asyncio.wait_for(llama._llm.run_on_model_thread(lambda: None), 10)  # the model let go of it
    assert llama._llm.running == 0


@pytest.mark.models
async def test_a_waiting_turn_gets_its_first_words_before_a_long_reply_ends(llama: LlamaCppBackend) -> None:
    log: list[str] = []
    story = "Write a long story about a knight and a dragon."
    question = "What is the capital of France?"
    spoken = threading.Event()
    running = asyncio.create_task(reply(llama, story, max_tokens=200, spoken=spoken, log=log))
    await asyncio.to_thread(spoken.wait, 30)  # the story is being spoken
    answer = await reply(llama, question, max_tokens=20, spoken=threading.Event(), log=log)
    told = await running
    assert answer.strip() and len(told) > len(answer)
    first, last = log.index(question), len(log) - 1 - log[::-1].index(story)
    assert first < last  # the question's first words came while the story was still being written
