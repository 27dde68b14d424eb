"""Resumable sessions against the fleet started as processes (gateway, LLM, TTS; real models, real Redis).

A client whose connection drops in the middle of a spoken reply connects
again within the grace period, asks for its session back, and gets the rest
of the reply (text and audio, nothing twice, nothing lost); the conversation
then goes on with its history.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from conftest import REDIS_URL, free_port
from fleet import mint_token, running_fleet

from audio_client.protocol import GatewaySession, Item, OptionsRefused, ResumePoint, StartOptions
from llm_orchestrator.history import History
from voicefleet.bus import Bus
from voicefleet.messages import AudioChunk, AudioEnd, Message, ReplyDelta, ReplyDone, TextInput, new_id
from voicefleet.settings import BusSettings

pytestmark = [pytest.mark.fleet, pytest.mark.models]

STORY = "Tell me a long story about a dragon and a knight."


@dataclass
class ResumeFleet:
    ws: str
    secret: str
    bus_settings: BusSettings

    def token(self, sub: str = "ada") -> str:
        return mint_token(self.secret, sub)


@pytest.fixture(scope="module")
def resume_fleet(redis_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResumeFleet]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not installed")
    prefix = f"vftest-{new_id()[:8]}"
    env = dict(VF_GATEWAY_RESUME_GRACE_S="60", VF_GATEWAY_IDLE_TIMEOUT_S="600", VF_LLM_MAX_TOKENS="96")
    workers = {"llm": "llm_orchestrator", "tts": "tts_worker"}
    with running_fleet(REDIS_URL, free_port(), prefix, tmp_path_factory.mktemp("resume-logs"), workers, **env) as fleet:
        yield ResumeFleet(fleet.ws, fleet.secret, BusSettings(redis_url=REDIS_URL, key_prefix=prefix))

@pytest.fixture
async def fleet_bus(resume_fleet: ResumeFleet) -> AsyncIterator[Bus]:
    bus = Bus(resume_fleet.bus_settings)
    yield bus
    await bus.close()


@dataclass
class Heard:
    text: str = ""
    audio: int = 0
    done: ReplyDone | None = None
    ended: bool = False


async def listen(session: GatewaySession, turn_id: str, heard: Heard, stop_after_audio: int = 0) -> str:
    """Collect one turn's reply text and audio bytes; stop once it has both reply_done and audio_end
    (or after enough audio)."""
    async for item in session.items():
        turn_id = turn_id or _turn_of(item)
        if isinstance(item, bytes):
            heard.audio += len(item)
            if stop_after_audio and heard.audio >= stop_after_audio:
                return turn_id
        elif item.turn_id == turn_id and isinstance(item, ReplyDelta):
            heard.text += item.text
        elif item.turn_id == turn_id and isinstance(item, ReplyDone):
            heard.done = item
            if heard.ended:
                return turn_id
        elif item.turn_id == turn_id and isinstance(item, AudioEnd):
            # reply_done and audio_end may come in either order: a reply that ends on a sentence
            # already spoken gets an empty final chunk, and its audio_end can overtake reply_done.
            heard.ended = True
            if heard.done is not None:
                return turn_id
    raise AssertionError("the connection ended before the reply did")


def _turn_of(item: Item) -> str:
    return item.turn_id if isinstance(item, Message) and item.type in ("reply_delta", "audio_start") else ""


async def test_a_dropped_client_gets_the_rest_of_the_reply_and_the_conversation_goes_on(
    resume_fleet: ResumeFleet, fleet_bus: Bus
) -> None:
    options = StartOptions()
    first = GatewaySession(resume_fleet.ws, resume_fleet.token(), options, open_timeout_s=15)
    await first.open()
    await first.send(TextInput(text=STORY))
    before = Heard()
    turn = await listen(first, "", before, stop_after_audio=8000)  # a quarter second of the reply heard
    assert turn and before.audio >= 8000
    # The network goes away: no close frame, no stop.
    assert first._ws is not None
    first._ws.transport.abort()
    where = first.position
    assert where is not None and where.session_id == first.session_id and where.after

    second = GatewaySession(resume_fleet.ws, resume_fleet.token(), options, open_timeout_s=15, resume=where)
    ready = await second.open()
    try:
        assert ready.resumed and ready.session_id == first.session_id
        after = Heard(text=before.text, audio=before.audio, done=before.done)
        await listen(second, turn, after)
        assert after.done is not None and not after.done.interrupted
        # Nothing lost and nothing twice: the text adds up to the reply, the audio to what TTS made.
        assert after.text == after.done.text
        made = [e.message for e in await fleet_bus.read(fleet_bus.keys.out(ready.session_id), "0", count=5000)]
        spoken = sum(len(m.audio) for m in made if isinstance(m, AudioChunk) and m.turn_id == turn)
        assert after.audio == spoken

        # The conversation goes on in the same session, with its history.
        await second.send(TextInput(text="Thank you! Now say goodbye in one sentence."))
        next_turn = Heard()
        second_turn = await listen(second, "", next_turn)
        assert second_turn != turn and next_turn.done is not None and next_turn.done.text
        history = await History(fleet_bus, 10, 4000, 600).entries(ready.session_id)
        assert (history[0].role, history[0].content) == ("user", STORY)
        assert [e.role for e in history] == ["user", "assistant", "user", "assistant"]
    finally:
        await second.close()


async def test_only_the_same_user_may_resume_a_session(resume_fleet: ResumeFleet) -> None:
    mine = GatewaySession(resume_fleet.ws, resume_fleet.token("ada"), StartOptions(), open_timeout_s=15)
    await mine.open()
    try:
        theirs = GatewaySession(resume_fleet.ws, resume_fleet.token("mallory"), StartOptions(), open_timeout_s=15,
                                resume=ResumePoint(mine.session_id))
        with pytest.raises(OptionsRefused, match="belongs to another user"):
            await theirs.open()
        # An ended session cannot come back: the client gets a new one and is told so.
        gone = GatewaySession(resume_fleet.ws, resume_fleet.token("ada"), StartOptions(), open_timeout_s=15,
                              resume=ResumePoint("no-such-session"))
        ready = await gone.open()
        await gone.close()
        assert not ready.resumed and ready.session_id != "no-such-session"
    finally:
        await mine.close()
