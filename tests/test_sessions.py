"""Session and turn state (voicefleet.sessions) against the real Redis."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from voicefleet import audio
from voicefleet.bus import SESSION_TTL_S, Bus
from voicefleet.messages import AudioChunk, Notice
from voicefleet.sessions import CLOSED_TTL_S, SessionRecord, Sessions


async def test_the_record_round_trips_and_bad_fields_keep_their_defaults(bus: Bus) -> None:
    sessions = Sessions(bus)
    record = SessionRecord(user="ada", client_sample_rate=48000, output_sample_rate=24000, wake_word="alexa",
                           voice="joe", speech_rate=1.25, language="en", created=12.5, connection="c1")
    await sessions.save("s1", record)
    assert await sessions.load("s1") == record
    assert await sessions.user_sessions("ada") == ["s1"] and await sessions.is_open("s1")
    await bus.redis.hset(bus.keys.session("s1"), mapping={"speech_rate": "fast", "output_sample_rate": "-3"})
    damaged = await sessions.load("s1")
    assert damaged is not None and damaged.speech_rate == 1.0 and damaged.output_sample_rate == audio.BUS_RATE
    assert await sessions.load("nope") is None
    assert (await sessions.for_turn("nope", "bob")).user == "bob"


async def test_a_new_turn_supersedes_the_previous_one_once(bus: Bus) -> None:
    sessions = Sessions(bus)
    first = await sessions.start_turn("s1")
    assert await sessions.current_turn("s1") == first and not await bus.is_cancelled("s1", first)
    second = await sessions.start_turn("s1")
    assert second != first and await bus.is_cancelled("s1", first)
    # The orchestrator confirming the same turn changes nothing.
    assert await sessions.start_turn("s1", second) == second and not await bus.is_cancelled("s1", second)
    assert await sessions.cancel_current("s1", "barge_in") == second and await bus.is_cancelled("s1", second)


async def test_only_the_same_user_attaches_and_detached_sessions_do_not_count(bus: Bus) -> None:
    sessions = Sessions(bus)
    record = SessionRecord(user="ada", connection="c1")
    await sessions.open("s1", record)
    assert await sessions.attach("s1", "ada", "c2", wait_s=0.1) is None  # c1 has not let go
    await sessions.detach("s1", record)
    assert await sessions.connected_count("ada") == 0 and await sessions.attached_connection("s1") == ""
    with pytest.raises(PermissionError):
        await sessions.attach("s1", "mallory", "c2")
    back = await sessions.attach("s1", "ada", "c2")
    assert back is not None and back.connection == "c2" and await sessions.connected_count("ada") == 1
    assert await sessions.attach("gone", "ada", "c3") is None
    await sessions.close("s1", "ada", "test")
    assert not await sessions.is_open("s1") and await sessions.user_sessions("ada") == []


async def test_a_connection_its_live_gateway_missed_the_drop_of_is_taken_over(bus: Bus) -> None:
    """No reset arrives after a real network drop: the old connection looks alive; a resume takes over."""
    sessions = Sessions(bus)
    await bus.beat("gateway", "gw1", {"ready": True})
    await sessions.open("s2", SessionRecord(user="ada", connection="gw1/c4"))
    taken = await sessions.attach("s2", "ada", "gw1/c5", wait_s=0.1)
    assert taken is not None and await sessions.attached_connection("s2") == "gw1/c5"


async def test_pending_notices_are_kept_then_taken_once(bus: Bus) -> None:
    sessions = Sessions(bus)
    await sessions.keep_notice("ada", Notice(code="timer", message="Your tea timer is done."))
    taken = await sessions.take_notices("ada")
    assert [n.message for n in taken if isinstance(n, Notice)] == ["Your tea timer is done."]
    assert await sessions.take_notices("ada") == []


def test_audio_arithmetic_and_the_one_wav_reader(tmp_path) -> None:  # type: ignore[no-untyped-def]
    chunk = AudioChunk(audio=np.zeros(2400, np.int16).tobytes(), sample_rate=24000)
    assert chunk.samples == 2400 and chunk.seconds == pytest.approx(0.1)
    assert audio.samples_at(chunk.audio, 24000) == 1600
    assert audio.rate_supported(8000) and audio.rate_supported(48000) and not audio.rate_supported(96000)
    assert audio.clamp_rate(4000) == audio.MIN_RATE
    with pytest.raises(audio.WavError):
        (tmp_path / "bad.wav").write_bytes(b"nope")
        audio.read_wav(tmp_path / "bad.wav")


async def test_refreshing_a_session_refreshes_its_keys_and_prunes_dead_entries(bus: Bus) -> None:
    sessions = Sessions(bus)
    record = SessionRecord(user="alice")
    await sessions.open("s1", record)
    await bus.emit(Notice(session_id="s1", code="hello", message="hi"))
    await sessions.start_turn("s1")
    for key in (bus.keys.audio("s1"), bus.keys.out("s1"), bus.keys.current_turn("s1")):
        await bus.redis.persist(key)  # as if written long ago
    # A session of a gateway that died over an hour ago.
    await bus.redis.zadd(bus.keys.sessions, {"ghost": time.time() - 2 * SESSION_TTL_S})
    await sessions.save("s1", record)  # what the gateway's keepalive does every 2 s
    for key in (bus.keys.audio("s1"), bus.keys.out("s1"), bus.keys.current_turn("s1")):
        assert 0 < await bus.redis.ttl(key) <= SESSION_TTL_S, key
    assert await bus.redis.zscore(bus.keys.sessions, "ghost") is None
    assert await bus.redis.zscore(bus.keys.sessions, "s1") is not None


async def test_connection_slots_are_reserved_atomically(bus: Bus) -> None:
    sessions = Sessions(bus)
    results = await asyncio.gather(*(sessions.reserve_slot("bob", f"c{i}", 3) for i in range(12)))
    assert sum(results) == 3
    holders = [f"c{i}" for i, ok in enumerate(results) if ok]
    await sessions.release_slot("bob", holders[0])
    assert await sessions.reserve_slot("bob", "late", 3)
    assert not await sessions.reserve_slot("bob", "later", 3)


async def test_closing_a_session_lets_every_key_of_it_expire_soon(bus: Bus) -> None:
    sessions = Sessions(bus)
    await sessions.open("s2", SessionRecord(user="alice"))
    turn = await sessions.start_turn("s2")
    await bus.emit(Notice(session_id="s2", code="hello", message="hi"))
    await bus.redis.rpush(bus.keys.history("s2"), "{}")
    await bus.redis.hset(bus.keys.turn_progress("s2", turn), "spoken", "1")
    await bus.redis.expire(bus.keys.turn_progress("s2", turn), 600)
    await sessions.close("s2", "alice", "test")
    keys = [k async for k in bus.redis.scan_iter(match=bus.keys.session_pattern("s2"), count=500)]
    assert len(keys) >= 6  # record, audio, out, turn, history, progress, the cancel marker
    for key in keys:
        assert 0 < await bus.redis.ttl(key) <= CLOSED_TTL_S, key


async def test_echo_cancelled_survives_the_session_hash(bus: Bus) -> None:
    """`start.echo_cancelled` reaches the STT worker through the record; booleans are stored as 0/1."""
    sessions = Sessions(bus)
    await sessions.save("s-aec", SessionRecord(user="u", echo_cancelled=True))
    loaded = await sessions.load("s-aec")
    assert loaded is not None and loaded.echo_cancelled is True
    await sessions.save("s-plain", SessionRecord(user="u"))
    plain = await sessions.load("s-plain")
    assert plain is not None and plain.echo_cancelled is False
