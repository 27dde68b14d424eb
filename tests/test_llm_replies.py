"""What the model may say: no echo, no copy of an earlier reply, no claimed action, short by default.

The pure checks (``guard``, the prompt, the history) are tested on their own;
the rest runs the orchestrator with the real SmolLM2 (greedy) on a real Redis,
in the situations where the model failed before (issue 16).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from llm_harness import FakeBackend, load_llama, messages, read_until_done, running_service, send_turn, speak_entries

from llm_orchestrator.backends import LlamaCppBackend, ToolRequest
from llm_orchestrator.backends.tool_grammar import gbnf, parse_call
from llm_orchestrator.function_tools import function_tools, tool_name
from llm_orchestrator.guard import (
    LONG_ENOUGH,
    Context,
    ReplyGate,
    claims_action,
    copies,
    echoes,
    language_of,
    similarity,
    words,
)
from llm_orchestrator.history import History, HistoryEntry, trim
from llm_orchestrator.prompt import PromptBuilder, wants_long
from voicefleet.bus import Bus
from voicefleet.messages import ReplyDelta, ReplyDone, ToolCall, ToolResult
from voicefleet.settings import BusSettings

#: The reply a session got stuck on in bench/chat_quality.py before the fix (afternoon session, turns 15-20).
STUCK = (
    "I'm sorry for any confusion, but as a feline-loving AI, I can provide information about cats and dogs "
    "that are known to have the ability to sleep with their owners."
)


# ---- the checks, on their own ----------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "user", "echo"),
    [
        ("Go forward 10 meters.", "Go forward 10 meters.", True),
        ("Feels like these days go on forever.", "Feels like these days go on forever.", True),
        ("Bien sûr. Book the train tickets for Lisbon.", "New note. Book the train tickets for Lisbon.", True),
        ("You turn left at the next corner.", "Turn left at the next corner.", True),
        ("Good morning!", "Good morning!", True),
        ("Hello.", "Hello.", True),
        ("Hello there!", "Hello.", False),
        ("To boil an egg, put it in boiling water.", "How do I boil an egg?", False),
        ("The capital of Japan is Tokyo.", "What is the capital of Japan?", False),
    ],
)
def test_echoes(reply: str, user: str, echo: bool) -> None:
    assert echoes(reply, user) is echo


def test_copies_of_an_earlier_reply() -> None:
    assert copies("I'm sorry for any confusion, but as a feline-loving AI,", STUCK)
    assert copies("I'm sorry for any confusion, but as a feline-loving AI, I can provide information", STUCK)
    assert not copies("I'm sorry for any", STUCK)  # too short to tell
    assert copies("What's a joke about?", "What's a joke about?")
    assert copies("The cat's name is a popular choice.", "The name of the cat is a popular choice.")
    assert not copies("The answer to this question is Tokyo.", "The answer lies in how light scatters in the air.")


@pytest.mark.parametrize(
    ("text", "claim"),
    [
        ("Noted. That's note 5.", True),
        ("I'll remember that.", True),
        ("I'll keep that in mind.", True),
        ("I've set a timer for ten minutes.", True),
        ("Your timer is set.", True),
        ("You could set a timer for five minutes.", False),
        ("Taking notes in class helps you remember.", False),
    ],
)
def test_claims_of_actions(text: str, claim: bool) -> None:
    assert claims_action(text) is claim


def test_the_gate_holds_the_start_until_it_can_judge_it() -> None:
    gate = ReplyGate(Context("Feels like these days go on forever."), max_sentences=2)
    assert gate.offer(["Feels like these days,"]) == [] and not gate.done  # maybe an echo: wait
    assert gate.offer(["go on forever."], final=True) == []
    assert gate.rejected == "echo" and gate.said == []

    gate = ReplyGate(Context("Good morning!"), max_sentences=2)
    assert gate.offer(["Good morning!"]) == []  # the user's words so far
    assert gate.offer(["How can I help you today?"]) == ["Good morning!", "How can I help you today?"]
    assert gate.stopped == LONG_ENOUGH


def test_the_start_of_an_earlier_reply_waits_for_the_rest() -> None:
    context = Context("Why?", (("What's a good name for a cat?", "Luna."), ("Go forward.", STUCK)))
    gate = ReplyGate(context, max_sentences=2)
    assert gate.offer(["I'm sorry,"]) == [] and not gate.done  # STUCK starts so
    assert gate.offer(["but as a feline-loving AI, I can provide information about cats."]) == []
    assert gate.rejected == "repeat"


def test_a_first_chunk_cut_before_a_conjunction_is_judged_with_its_sentence_when_it_proves_nothing() -> None:
    # The chunker cuts a long first clause before "and", "that"... (see test_llm_chunker).
    gate = ReplyGate(Context("I have a meeting in ten minutes and I feel nervous."), max_sentences=2)
    assert gate.offer(["You have a meeting in ten minutes"]) == [] and not gate.done  # mostly the user's words
    assert gate.offer(["and you feel nervous."]) == []
    assert gate.rejected == "echo"

    earlier = "The answer to the question is simple: be kind."
    gate = ReplyGate(Context("Why is the sky blue?", (("Why be nice?", earlier),)), max_sentences=2)
    assert gate.offer(["The answer to the question"]) == [] and not gate.done  # a habit, or a stuck reply?
    said = gate.offer(["that you asked is light scattering."])
    assert said == ["The answer to the question", "that you asked is light scattering."]  # a habit

    gate = ReplyGate(Context("What is the capital of France?"), max_sentences=2)
    assert gate.offer(["Mondays are a day of the week"]) == ["Mondays are a day of the week"]  # judged at once


def test_the_gate_ends_a_reply_at_a_copy_or_at_the_sentence_limit() -> None:
    context = Context("How many legs does a spider have?", (("What do you think about rainy days?", STUCK),))
    gate = ReplyGate(context, max_sentences=3)
    assert gate.offer(["A spider has eight legs."]) == ["A spider has eight legs."]
    assert gate.offer(["I'm sorry for any confusion, but as a feline-loving AI, I can provide information."]) == []
    assert gate.stopped == "repeat" and gate.said == ["A spider has eight legs."]

    gate = ReplyGate(Context("Tell me about the sun."), max_sentences=2)
    said = gate.offer(["The sun is a star,", "a huge ball of hot gas.", "It is very old.", "It will shine for ages."])
    assert said == ["The sun is a star,", "a huge ball of hot gas.", "It is very old."] and gate.stopped == LONG_ENOUGH
    assert gate.offer(["More."]) == []


def test_replies_stay_in_the_sessions_language() -> None:
    assert language_of("Este es uno de los más amigos del mundo.") == "es"
    assert language_of("Le chat est sur la table avec une souris.") == "fr"
    assert language_of("To boil an egg, put it in the water for ten minutes.") == "en"
    assert language_of("Gracias!") is None  # too short to tell
    assert language_of("Hola, amigos! ¡Pasabamos en la loma!") == "es"
    assert (
        Context("How do I say thank you in Spanish?").problem("Este es uno de los más amigos del mundo.") == "language"
    )
    assert Context("Bonjour !", language="fr").problem("Le chat est sur la table avec une souris.") is None
    assert Context("Bonjour !", language="fr").problem("The cat is on the table with a mouse.") == "language"


def test_a_claim_is_allowed_when_a_tool_ran() -> None:
    assert Context("Save a note: milk.").problem("I've saved your note.") == "claim"
    assert Context("Save a note: milk.", tools_ran=True).problem("I've saved your note.") is None


def test_command_turns_stay_out_of_the_prompt() -> None:
    entries = [
        HistoryEntry("user", "Take a note: buy bread.", n=1, tool="notes.add"),
        HistoryEntry("assistant", "Noted. That's note 5.", tool="notes.add"),
        HistoryEntry("user", "Why is the sky blue?", n=2),
        HistoryEntry("assistant", "Sunlight scatters off the air."),
        HistoryEntry("assistant", "Your pasta timer is done.", tool="timer"),  # an announcement
    ]
    kept = trim(entries, max_turns=8, token_budget=10_000)
    assert [e.content for e in kept] == ["Why is the sky blue?", "Sunlight scatters off the air."]
    assert HistoryEntry.from_json('{"role": "user", "content": "x", "tool": "notes.add"}').tool == "notes.add"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "long"),
    [("Tell me a long story.", True), ("Explain photosynthesis in detail.", True), ("Why is the sky blue?", False)],
)
def test_long_answers_only_when_asked(text: str, long: bool) -> None:
    assert wants_long(text) is long


def test_the_system_prompt_names_the_language_only_when_not_english() -> None:
    prompt = PromptBuilder("You are a voice assistant.")
    assert prompt.system(language="fr-FR").endswith("Always answer in French.")
    assert prompt.system(language="en-US") == prompt.system() == "You are a voice assistant."
    retry = prompt.retry(prompt.system(), "Good morning!")
    assert [m.content for m in retry] == ["You are a voice assistant.", "Good morning!"]  # no history


# ---- with the model ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppBackend]:
    backend = load_llama()
    yield backend
    backend._llm.shutdown()


async def answer(bus: Bus, session_id: str, text: str) -> tuple[str, list[str]]:
    """The reply's text (as the client sees it) and the chunks sent to speech."""
    turn = await send_turn(bus, session_id, text)
    out = await read_until_done(bus, session_id, turn.turn_id, within=120)  # a retry on a busy machine
    done = messages(out, ReplyDone, turn.turn_id)[-1]
    assert "".join(d.text for d in messages(out, ReplyDelta, turn.turn_id)) == done.text
    return done.text, [e.message.text for e in await speak_entries(bus, turn.turn_id)]


async def stuck_history(bus: Bus, session_id: str) -> None:
    history = History(bus, max_turns=8, token_budget=1200, ttl_s=600)
    for question in ("What's a good name for a cat?", "Go forward 10 meters.", "What do you think about rainy days?"):
        await history.append(session_id, HistoryEntry("user", question), HistoryEntry("assistant", STUCK))


@pytest.mark.models
async def test_a_session_stuck_on_one_answer_gets_a_new_one(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    # Without the checks the model copies its earlier replies (it sees three copies in its history)...
    await stuck_history(bus, "before")
    async with running_service(bus_settings, [llama], reply_checks=False):
        copied, _ = await answer(bus, "before", "How do I make a cup of tea?")
    assert "feline" in copied
    # ...with them, the copy is refused before it is spoken and the question is asked again on its own.
    await stuck_history(bus, "after")
    async with running_service(bus_settings, [llama]):
        reply, spoken = await answer(bus, "after", "How do I make a cup of tea?")
    assert spoken and "feline" not in reply and similarity(words(reply), words(STUCK)) < 0.5
    assert "feline" not in " ".join(spoken)


@pytest.mark.models
async def test_the_users_words_are_never_said_back(bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend) -> None:
    async with running_service(bus_settings, [llama], reply_checks=False):
        said_back, _ = await answer(bus, "s1", "The weather is nice today.")
    assert echoes(said_back, "The weather is nice today.")  # what the model does on its own
    async with running_service(bus_settings, [llama]):
        for i, text in enumerate(["The weather is nice today.", "Turn left at the next corner.", "Good morning!"]):
            reply, spoken = await answer(bus, f"s{i + 2}", text)
            assert spoken and not any(echoes(chunk, text) for chunk in spoken), (text, reply)
            assert similarity(words(reply), words(text)) < 0.75


@pytest.mark.models
async def test_tool_answers_in_the_history_are_not_copied(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    history = History(bus, max_turns=8, token_budget=1200, ttl_s=600)
    await history.append(
        "s1",
        HistoryEntry("user", "Take a note: buy bread.", tool="notes.add"),
        HistoryEntry("assistant", "Noted. That's note 5.", tool="notes.add"),
    )
    await history.append(
        "s1",
        HistoryEntry("user", "Remember that my sister is called Ana.", tool="memory.remember"),
        HistoryEntry("assistant", "I'll remember that.", tool="memory.remember"),
    )
    async with running_service(bus_settings, [llama], intents=False):
        for text in ["Could you jot something down for me: buy milk.", "Keep in mind that I prefer metric units."]:
            reply, spoken = await answer(bus, "s1", text)
            assert spoken and not claims_action(reply), (text, reply)
            assert "note 5" not in reply.lower()


@pytest.mark.models
async def test_replies_are_short_unless_a_long_one_is_asked_for(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    def sentences(chunks: list[str]) -> int:
        return sum(chunk.rstrip().endswith((".", "!", "?")) for chunk in chunks)

    async with running_service(bus_settings, [llama], max_tokens=96, max_sentences=2, long_max_sentences=5):
        short, short_spoken = await answer(bus, "s1", "Tell me about the sun.")
        _, long_spoken = await answer(bus, "s2", "Tell me a long story about a dragon.")
    assert sentences(short_spoken) <= 2 and words(short) == words(" ".join(short_spoken))  # nothing more was shown
    assert 2 < sentences(long_spoken) <= 5


# ---- tool calls under a grammar (llama.cpp) ------------------------------------------------------
def test_a_call_in_the_grammar_shape_is_parsed() -> None:
    assert parse_call('{"name": "notes_add", "arguments": {"text": "buy milk"}}') == ("notes_add", {"text": "buy milk"})
    assert parse_call('{"name": "notes_add", "arguments": {"text": "buy') is None  # cut short by max_tokens
    assert parse_call("Sure, here it is.") is None


@pytest.mark.models
async def test_the_grammar_from_the_tool_schemas_only_lets_valid_calls_through(llama: LlamaCppBackend) -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    tools = {t.metadata.get_name(): t for t in function_tools()}
    grammar = LlamaGrammar.from_string(gbnf(list(tools.values()), allow_text=False), verbose=False)
    text_or_call = LlamaGrammar.from_string(gbnf(list(tools.values())), verbose=False)  # the one offered
    assert text_or_call is not None
    for request in ["Take a note: buy milk.", "Set a timer for ten minutes.", "Why is the sky blue?"]:

        def generate(text: str = request) -> str:  # on the model thread: one Llama serves one call at a time
            reply = llama._llm.contexts[0].create_chat_completion(
                messages=[{"role": "user", "content": text}], grammar=grammar, max_tokens=96, temperature=0
            )
            return str(reply["choices"][0]["message"]["content"])

        out = await llama._llm.run_on_model_thread(generate)
        parsed = parse_call(out)
        assert parsed is not None, out
        name, arguments = parsed
        assert name in tools and tool_name(name) is not None
        tools[name].metadata.fn_schema.model_validate(arguments)  # type: ignore[union-attr]


async def test_a_call_made_under_the_grammar_runs_the_tool_and_its_answer_is_spoken(
    bus: Bus, bus_settings: BusSettings
) -> None:
    await bus.ensure_group(bus.keys.tools, "tools")
    call = ToolRequest("call-1", "notes_add", {"text": "buy milk"})  # SmolLM2 never makes one on its own
    async with running_service(bus_settings, [FakeBackend("llamacpp", call=call)], intents=False, tool_timeout_s=10):
        turn = await send_turn(bus, "s1", "Could you jot something down for me: buy milk.")
        async with asyncio.timeout(10):
            while not (entries := await bus.read_group(bus.keys.tools, "tools", "t", count=1, block_ms=200)):
                pass
        asked = entries[0].message
        assert isinstance(asked, ToolCall) and (asked.name, asked.args) == ("notes.add", {"text": "buy milk"})
        answer = "Saved note 3: buy milk."
        await bus.reply(asked.call_id, ToolResult(call_id=asked.call_id, name=asked.name, ok=True, text=answer))
        out = await read_until_done(bus, "s1", turn.turn_id)
    assert messages(out, ReplyDone, turn.turn_id)[-1].text == answer
    assert " ".join(e.message.text for e in await speak_entries(bus, turn.turn_id)) == answer
    stored = await History(bus, 8, 1200, 60).entries("s1")
    assert [e.tool for e in stored] == ["notes_add", "notes_add"]  # kept out of later prompts


@pytest.mark.models
async def test_the_exchange_is_in_the_history_when_reply_done_arrives(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend
) -> None:
    # A client may type the next sentence the moment it sees reply_done: that turn's prompt must hold this one.
    async with running_service(bus_settings, [llama]):
        for text in ("Why is the sky blue?", "Who wrote Romeo and Juliet?"):
            turn = await send_turn(bus, "s1", text)
            done = messages(await read_until_done(bus, "s1", turn.turn_id), ReplyDone, turn.turn_id)[-1]
            stored = await History(bus, 8, 1200, 60).entries("s1")
            assert [(e.role, e.content) for e in stored[-2:]] == [("user", text), ("assistant", done.text.strip())]
            assert stored[-1].at <= done.ts["llm_done"]  # written before reply_done was sent, not after
