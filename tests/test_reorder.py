"""Reply audio ordering (pure logic)."""

from __future__ import annotations

from gateway.reorder import AudioOrder
from voicefleet.messages import AudioChunk


def chunk(turn: str, seq: int, index: int, last: bool = False, final: bool = False) -> AudioChunk:
    return AudioChunk(session_id="s", turn_id=turn, seq=seq, index=index, last=last, final=final,
                      audio=f"{turn}{seq}{index}".encode())


def kinds(out: list) -> list[str]:
    return [o.decode() if isinstance(o, bytes) else o.type for o in out]


def test_in_order_chunks_flow_straight_through() -> None:
    order = AudioOrder("s")
    assert kinds(order.push(chunk("t", 0, 0))) == ["audio_start", "t00"]
    assert kinds(order.push(chunk("t", 0, 1, last=True))) == ["t01"]
    assert kinds(order.push(chunk("t", 1, 0, last=True, final=True))) == ["t10", "audio_end"]
    assert order.playing_turn is None


def test_later_sentences_wait_for_earlier_ones() -> None:
    order = AudioOrder("s")
    assert order.push(chunk("t", 1, 0, last=True, final=True)) == []
    assert kinds(order.push(chunk("t", 0, 0, last=True))) == ["audio_start", "t00", "t10", "audio_end"]


def test_duplicates_from_a_retried_sentence_are_dropped() -> None:
    order = AudioOrder("s")
    order.push(chunk("t", 0, 0))
    assert order.push(chunk("t", 0, 0)) == []
    assert kinds(order.push(chunk("t", 0, 1, last=True, final=True))) == ["t01", "audio_end"]
    assert order.push(chunk("t", 0, 1, last=True, final=True)) == []


def test_a_dropped_turn_stays_silent() -> None:
    order = AudioOrder("s")
    order.push(chunk("t", 0, 0))
    order.drop("t")
    assert order.push(chunk("t", 0, 1, last=True, final=True)) == []


def test_a_new_turn_closes_the_unfinished_one() -> None:
    order = AudioOrder("s")
    order.push(chunk("a", 0, 0))
    assert kinds(order.push(chunk("b", 0, 0))) == ["audio_end", "audio_start", "b00"]
    assert order.playing_turn == "b"


def test_empty_final_chunk_ends_the_turn_without_bytes() -> None:
    order = AudioOrder("s")
    order.push(chunk("t", 0, 0, last=True))
    empty = AudioChunk(session_id="s", turn_id="t", seq=1, index=0, last=True, final=True)
    assert kinds(order.push(empty)) == ["audio_end"]
