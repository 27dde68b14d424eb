"""The turn state machine and the text filters: pure logic, fed with made-up probabilities."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np

from vad_stt_worker.hallucinations import HallucinationFilter, normalize_text
from vad_stt_worker.replay import Marker, ReplayTracker
from vad_stt_worker.settings import DEFAULT_BLOCKLIST
from vad_stt_worker.stt import Segment, Transcript
from vad_stt_worker.turn import (
    Action,
    Asleep,
    Endpoint,
    Final,
    Partial,
    Speculate,
    SpeechEnd,
    SpeechStart,
    TurnConfig,
    TurnDetector,
    WakeDetected,
)
from vad_stt_worker.wake import normalize_name, strip_wake_word

CHUNK = 512
LOUD = np.full(CHUNK, 8000, dtype=np.int16)  # about -12 dBFS
QUIET = np.full(CHUNK, 800, dtype=np.int16)  # about -32 dBFS


def feed(det: TurnDetector, probs: list[float], chunk: np.ndarray = QUIET) -> list[Action]:
    actions: list[Action] = []
    for p in probs:
        actions += det.on_chunk(chunk, p)
    return actions


def chunks(ms: float) -> int:
    return round(ms / 32)


def of(actions: list[Action], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def test_speech_start_stop_and_speculation_share_the_audio() -> None:
    det = TurnDetector(TurnConfig(partial_interval_ms=0))
    actions = feed(det, [0.0] * 20 + [0.9] * chunks(1000) + [0.05] * chunks(600))
    (start,) = of(actions, SpeechStart)
    assert start.position == 20 * CHUNK  # the onset, not the moment it was confirmed
    (spec,) = of(actions, Speculate)
    (stop,) = of(actions, SpeechEnd)
    (final,) = of(actions, Final)
    assert stop.position == (20 + chunks(1000)) * CHUNK and stop.reason == "silence"
    assert final.speculated and np.array_equal(final.audio, spec.audio)
    # pre-roll before the onset, a little silence after the end
    assert final.audio.size == chunks(1000) * CHUNK + 300 * 16 + 160 * 16
    assert kinds(actions) == ["SpeechStart", "Speculate", "SpeechEnd", "Final"]


def kinds(actions: list[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_resumed_speech_discards_the_speculation() -> None:
    det = TurnDetector(TurnConfig(partial_interval_ms=0))
    actions = feed(det, [0.9] * 20 + [0.05] * chunks(250) + [0.9] * 20 + [0.05] * chunks(600))
    assert kinds(actions) == ["SpeechStart", "Speculate", "Discard", "Speculate", "SpeechEnd", "Final"]
    assert of(actions, Final)[0].speculated


def verdicts(*answers: float) -> tuple[list[int], Endpoint]:
    """A stand-in end-of-turn model answering ``answers`` in turn; records the audio length it was asked about."""
    asked: list[int] = []

    def endpoint(audio: np.ndarray) -> float:
        asked.append(audio.size)
        return answers[len(asked) - 1]

    return asked, endpoint


def test_model_says_complete_ends_the_turn_after_200_ms() -> None:
    cfg = TurnConfig(partial_interval_ms=0)
    asked, endpoint = verdicts(0.9)
    actions = feed(TurnDetector(cfg, endpoint=endpoint), [0.0] * 5 + [0.9] * chunks(1000) + [0.05] * chunks(1000))
    assert kinds(actions) == ["SpeechStart", "Speculate", "SpeechEnd", "Final"]
    stop, final = of(actions, SpeechEnd)[0], of(actions, Final)[0]
    waited = final.position - stop.position  # audio position of the decision minus the end of speech
    assert CHUNK * chunks(200) <= waited <= CHUNK * (chunks(200) + 1) < CHUNK * chunks(cfg.eot_silence_ms)
    assert len(asked) == 1 and asked[0] >= chunks(1000) * CHUNK  # asked once, at the pause, on the utterance
    assert final.speculated


def test_model_says_incomplete_a_500_ms_pause_stays_one_turn() -> None:
    asked, endpoint = verdicts(0.1, 0.95)
    det = TurnDetector(TurnConfig(partial_interval_ms=0), endpoint=endpoint)
    probs = [0.9] * chunks(800) + [0.05] * chunks(500) + [0.9] * chunks(800) + [0.05] * chunks(1000)
    actions = feed(det, probs)
    assert kinds(actions) == ["SpeechStart", "Speculate", "Discard", "Speculate", "SpeechEnd", "Final"]
    assert of(actions, SpeechEnd)[0].position == chunks(2100) * CHUNK
    assert len(asked) == 2
    # Silence only (no model): the same pause ends the turn.
    fixed = feed(TurnDetector(TurnConfig(partial_interval_ms=0)), probs)
    assert len(of(fixed, SpeechEnd)) == 2


def test_speech_right_after_an_early_end_carries_the_utterance_on() -> None:
    asked, endpoint = verdicts(0.9, 0.9, 0.9)
    det = TurnDetector(TurnConfig(partial_interval_ms=0, pre_roll_ms=0), endpoint=endpoint)
    # The model wrongly calls the first half complete; the speaker goes on after 500 ms.
    actions = feed(det, [0.9] * chunks(800) + [0.05] * chunks(500) + [0.9] * chunks(800) + [0.05] * chunks(400))
    assert kinds(actions) == [
        "SpeechStart", "Speculate", "SpeechEnd", "Final", "SpeechStart", "Speculate", "SpeechEnd", "Final",
    ]
    first, second = of(actions, Final)
    assert of(actions, SpeechStart)[1].continues == first.utterance
    # The second final holds the whole sentence: both halves and the pause.
    assert second.audio.size >= chunks(2100) * CHUNK and np.array_equal(
        second.audio[: first.audio.size], first.audio
    )
    assert second.voiced_ms >= 1500
    assert len(asked) == 2 and asked[1] > asked[0] + chunks(1200) * CHUNK  # the model then hears it all
    # After a longer silence, speech is a new utterance.
    later = feed(det, [0.05] * chunks(1000) + [0.9] * chunks(400))
    assert of(later, SpeechStart)[0].continues == 0


def test_short_blips_and_hysteresis() -> None:
    det = TurnDetector(TurnConfig())
    assert of(feed(det, [0.0, 0.9, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0]), SpeechStart) == []  # 64 ms < min speech
    det = TurnDetector(TurnConfig(partial_interval_ms=0))
    # Probabilities between the two thresholds keep an utterance going.
    actions = feed(det, [0.9] * 10 + [0.4] * 30 + [0.1] * 20)
    assert of(actions, SpeechEnd)[0].position == 40 * CHUNK


def test_partials_about_every_second() -> None:
    det = TurnDetector(TurnConfig(partial_interval_ms=1000))
    actions = feed(det, [0.9] * chunks(3500))
    partials = of(actions, Partial)
    assert len(partials) == 3
    assert all(p.audio.size > 0 for p in partials)


def test_max_length_cuts_the_utterance() -> None:
    det = TurnDetector(TurnConfig(max_utterance_s=2.0, partial_interval_ms=0))
    actions = feed(det, [0.9] * chunks(5000))
    stops = of(actions, SpeechEnd)
    assert stops[0].reason == "max_length"
    assert abs(stops[0].position - 2.0 * 16000) <= CHUNK
    assert len(of(actions, SpeechStart)) == 3  # still talking: new utterances follow


def test_wake_word_gates_then_follow_up_window_closes_after_silence() -> None:
    cfg = TurnConfig(follow_up_s=2.0, wake_cooldown_s=1.0, partial_interval_ms=0)
    det = TurnDetector(cfg, wake_word="hey_jarvis")
    assert of(feed(det, [0.9] * 30 + [0.0] * 30), SpeechStart) == []  # no wake word: not heard
    feed(det, [0.9] * 10)
    woke = det.on_wake_score("hey_jarvis", 0.95, det.position)
    assert of(woke, WakeDetected)[0].score == 0.95
    assert det.on_wake_score("hey_jarvis", 0.99, det.position + CHUNK) == []  # cooldown
    assert det.on_wake_score("alexa", 0.99, det.position + 99 * CHUNK) == []  # not this session's word
    wake_at = det.position
    actions = feed(det, [0.9] * 20 + [0.0] * 20)
    (start,) = of(actions, SpeechStart)
    assert start.position >= wake_at
    assert of(actions, Final)[0].audio.size <= det.position - wake_at  # nothing before the wake word
    # A follow-up question within the window needs no wake word.
    assert of(feed(det, [0.9] * 20 + [0.0] * 20), SpeechStart)
    # Then 2 s of silence close the window.
    assert of(feed(det, [0.0] * chunks(2100)), Asleep)
    assert of(feed(det, [0.9] * 30), SpeechStart) == []


def test_echo_alone_never_starts_speech_but_louder_user_speech_does() -> None:
    det = TurnDetector(TurnConfig(partial_interval_ms=0, echo_warmup_ms=300))
    det.set_playback(True)
    # The assistant's voice at the microphone: speech-like, at its own level.
    assert of(feed(det, [0.99] * chunks(3000), QUIET), SpeechStart) == []
    # The user, louder than the echo, with gaps between syllables.
    pattern = ([0.99] * 3 + [0.99] * 2) * 4
    loudness = ([LOUD] * 3 + [QUIET] * 2) * 4
    actions: list[Action] = []
    for p, c in zip(pattern, loudness, strict=True):
        actions += det.on_chunk(c, p)
    (start,) = of(actions, SpeechStart)
    assert start.over_playback


def test_echo_guard_needs_to_hear_the_echo_first() -> None:
    det = TurnDetector(TurnConfig(partial_interval_ms=0, echo_warmup_ms=500))
    det.set_playback(True)
    # The reply starts loud right away: not taken for the user.
    assert of(feed(det, [0.99] * chunks(400), LOUD), SpeechStart) == []
    det.set_playback(False)
    # After playback and its echo tail, normal rules again.
    feed(det, [0.0] * chunks(400))
    assert of(feed(det, [0.9] * 10, QUIET), SpeechStart)


def test_with_the_echo_cancelled_speech_at_the_echo_level_barges_in() -> None:
    """AEC3 removed the echo: the guard judges what is left, so a person as loud as the echo was gets through."""
    guarded = TurnDetector(TurnConfig(partial_interval_ms=0, echo_warmup_ms=300))
    cancelled = TurnDetector(TurnConfig(partial_interval_ms=0, echo_warmup_ms=300))
    cancelled.echo_cancelled = True
    guarded.set_playback(True)
    cancelled.set_playback(True)
    feed(guarded, [0.99] * chunks(1000), LOUD)  # the echo as the microphone hears it
    feed(cancelled, [0.3] * chunks(1000), QUIET)  # what the canceller leaves of it
    speech = [0.7] * chunks(400)  # a person as loud as the echo, Silero fairly sure
    assert of(feed(guarded, speech, LOUD), SpeechStart) == []
    (start,) = of(feed(cancelled, speech, LOUD), SpeechStart)
    assert start.over_playback  # still a barge-in
    # Residual echo that Silero takes for speech, at the residual's own level, does not count.
    assert of(feed(cancelled, [0.0] * chunks(1000) + [0.9] * chunks(400), QUIET), SpeechStart) == []


def test_double_talk_the_canceller_left_whole_barges_in_sooner_and_is_not_learned_as_echo() -> None:
    """What the canceller took from each chunk (its level before, ``raw_level``) tells the person from the echo."""
    config = TurnConfig(partial_interval_ms=0, echo_warmup_ms=300)
    det = TurnDetector(config)
    det.echo_cancelled = True
    det.set_playback(True)
    # The echo at -12 dBFS in, its rest at about -52 dBFS out: the canceller removes 40 dB (converged).
    rest = (QUIET // 100).astype(np.int16)
    for _ in range(chunks(2000)):
        assert det.on_chunk(rest, 0.1, raw_level=-12.0) == []
    # A soft onset Silero is unsure of, left whole by the canceller: not learned as the echo's rest
    # (it was, and the rest's level rose to the person's own and locked them out).
    for _ in range(chunks(800)):
        det.on_chunk(QUIET, 0.3, raw_level=-31.0)
    assert det.echo.echo_db < -45
    # Then speech: three chunks (96 ms) the canceller left whole start it; 192 ms are not needed.
    actions = feed_raw(det, [0.9] * 3, QUIET, raw_level=-30.0)
    (start,) = of(actions, SpeechStart)
    assert start.over_playback

    # The same chunks with most of their level taken out by the canceller (echo it could not fully
    # remove) need the usual 192 ms.
    other = TurnDetector(config)
    other.echo_cancelled = True
    other.set_playback(True)
    for _ in range(chunks(2000)):
        other.on_chunk(rest, 0.1, raw_level=-12.0)
    assert of(feed_raw(other, [0.9] * 3, QUIET, raw_level=-12.0), SpeechStart) == []
    assert of(feed_raw(other, [0.9] * 3, QUIET, raw_level=-12.0), SpeechStart)


def test_double_talk_needs_a_converged_canceller() -> None:
    """Before the canceller removes the echo well, nothing it passes counts as the person sooner."""
    det = TurnDetector(TurnConfig(partial_interval_ms=0, echo_warmup_ms=300))
    det.echo_cancelled = True
    det.set_playback(True)
    # Converging: the echo passes nearly whole (5 dB removed); Silero is unsure of it.
    for _ in range(chunks(2000)):
        assert det.on_chunk(QUIET, 0.3, raw_level=-27.0) == []
    assert not det.echo.converged(det.config.aec_erle_db)
    assert of(feed_raw(det, [0.9] * 3, QUIET, raw_level=-27.0), SpeechStart) == []
    # Once it does (the median of the last 4 s), it may; a restarted canceller starts over.
    for _ in range(chunks(4000)):
        det.on_chunk((QUIET // 100).astype(np.int16), 0.1, raw_level=-12.0)
    assert det.echo.converged(det.config.aec_erle_db)
    det.echo.forget_erle()
    assert not det.echo.converged(det.config.aec_erle_db)


def feed_raw(det: TurnDetector, probs: list[float], chunk: np.ndarray, raw_level: float) -> list[Action]:
    actions: list[Action] = []
    for p in probs:
        actions += det.on_chunk(chunk, p, raw_level=raw_level)
    return actions


def test_hallucination_filter() -> None:
    f = HallucinationFilter.create(DEFAULT_BLOCKLIST)
    sure = Segment(" Turn on the lights.", no_speech_prob=0.01, avg_logprob=-0.2)
    assert f.clean(Transcript([sure]), voiced_ms=900) == "Turn on the lights."
    assert f.clean(Transcript([sure]), voiced_ms=100) == ""  # too little voice
    assert f.clean(Transcript([Segment(" Thank you.", 0.3, -0.7)]), voiced_ms=300) == ""
    assert f.clean(Transcript([Segment(" you", 0.1, -0.9)]), voiced_ms=600) == ""
    assert f.clean(Transcript([Segment(" Thank you.", 0.02, -0.15)]), voiced_ms=700) == "Thank you."
    assert f.clean(Transcript([Segment(" Hello there.", 0.9, -1.2)]), voiced_ms=900) == ""  # not speech
    assert f.clean(Transcript([Segment(" la la la la", 0.0, -0.2, compression_ratio=3.0)]), 900) == ""


def test_text_helpers() -> None:
    assert normalize_text("Hey, what's THE weather?!") == "hey what's the weather"
    assert normalize_name("Hey Jarvis") == "hey_jarvis" and normalize_name("") is None
    assert strip_wake_word("Jarvis, what time is it?", "hey_jarvis") == "What time is it?"
    assert strip_wake_word("Hey Jarvis what time is it?", "hey_jarvis") == "What time is it?"
    assert strip_wake_word("What time is it?", "hey_jarvis") == "What time is it?"
    assert strip_wake_word("Alexa, stop.", None) == "Alexa, stop."


async def test_the_resume_point_holds_an_utterance_until_its_turn_is_handed_on() -> None:
    """A new owner replays from the marker's resume point (vad_stt_worker/replay.py): never a handed-on turn."""
    _, endpoint = verdicts(0.9, 0.9)
    det = TurnDetector(TurnConfig(partial_interval_ms=0), endpoint=endpoint)
    tracker = ReplayTracker(b"0-0", 10 * CHUNK)  # this owner started 10 chunks into the session
    marks: list[str] = []
    tracker.on_settled = lambda: marks.append(tracker.marker(f"{det.position // CHUNK}-0".encode(), det.position, det))
    actions: list[Action] = []

    def feed_entries(probs: list[float]) -> None:  # one stream entry "<n>-0" per chunk
        for p in probs:
            n = det.position // CHUNK
            tracker.frame(f"{n}-0".encode(), det.position)
            for action in det.on_chunk(QUIET, p):
                tracker.on_action(action, det)
                actions.append(action)

    def resume() -> Marker:
        return Marker.parse(tracker.marker(f"{det.position // CHUNK}-0".encode(), det.position, det))

    feed_entries([0.0] * chunks(1000) + [0.9] * chunks(600))
    start = of(actions, SpeechStart)[0]
    assert resume().resume_pos <= 10 * CHUNK + start.position - CHUNK * chunks(300) + CHUNK  # its pre-roll
    feed_entries([0.05] * chunks(300))
    final = of(actions, Final)[0]
    gate = asyncio.Event()
    task = asyncio.create_task(gate.wait())
    tracker.track(final, task)
    feed_entries([0.05] * chunks(200))
    held = resume()
    assert held.resume_pos < 10 * CHUNK + start.position and held.resume_id == f"{held.resume_pos // CHUNK - 10}-0"
    # The detector still keeps the audio (speech now would carry the utterance on)...
    assert det.history.start < final.speech_end
    gate.set()
    await task
    await asyncio.sleep(0)
    # ...but once the turn is handed on, the marker moves past it at once.
    assert len(marks) == 1 and Marker.parse(marks[0]).resume_pos >= 10 * CHUNK + final.speech_end
    assert not Marker.parse(marks[0]).awake
    # A transcription cancelled with its runner (not handed on) keeps the utterance for the next owner.
    feed_entries([0.05] * chunks(1500) + [0.9] * chunks(600) + [0.05] * chunks(300))
    second = of(actions, Final)[1]
    task = asyncio.create_task(asyncio.Event().wait())
    tracker.track(second, task)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert resume().resume_pos < 10 * CHUNK + second.speech_end - CHUNK * chunks(500) and len(marks) == 1
