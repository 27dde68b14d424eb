"""The echo canceller alone (WebRTC AEC3 through livekit), on real speech: echo out, the person kept."""

from __future__ import annotations

import numpy as np
import soxr
from speech import say

from vad_stt_worker.listener import Listener
from vad_stt_worker.turn import Action, SpeechStart, TurnConfig
from voicefleet.aec import EchoCanceller

RATE = 22050  # the client's output rate; the canceller resamples its reference


def level_db(audio: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-9))


def run(aec: EchoCanceller, mic: np.ndarray) -> np.ndarray:
    frames = [np.clip(mic[i : i + 640], -32768, 32767).astype(np.int16) for i in range(0, mic.size, 640)]
    return np.concatenate([aec.process(f) for f in frames])


def test_echo_is_removed_and_the_person_over_it_kept() -> None:
    reply = say(
        "Here is the weather for today. It will be sunny in the morning, with clouds building "
        "in the afternoon and a chance of rain by evening.",
        RATE,
    )
    echo = soxr.resample(reply, RATE, 16000).astype(np.float32) * 10 ** (-10 / 20)
    echo = np.concatenate([np.zeros(60 * 16, np.float32), echo])  # 60 ms late
    person = say("Stop, what about tomorrow?", length_scale=1.2).astype(np.float32)
    at = 3 * 16000
    with_person = echo.copy()
    with_person[at : at + person.size] += person

    alone = EchoCanceller()
    alone.add_reference(reply, RATE, "t1")
    alone.playback_started()
    cleaned = run(alone, echo)
    assert cleaned.size == echo.size - echo.size % 160
    # Once converged (after the first second) the echo is gone: well over 30 dB down.
    assert level_db(cleaned[16000:]) < level_db(echo[16000 : cleaned.size]) - 30

    over = EchoCanceller()
    over.add_reference(reply, RATE, "t1")
    over.playback_started()
    heard = run(over, with_person)[at : at + person.size]
    assert abs(level_db(heard) - level_db(person)) < 4  # the person passes, the echo under them goes


def test_without_playback_or_reference_the_microphone_passes() -> None:
    aec = EchoCanceller()
    speech = say("Turn on the lights.")
    aec.add_reference(say("Something else entirely.", RATE), RATE, "t1")  # queued, but never played
    out = run(aec, speech.astype(np.float32))
    assert not aec.active and np.array_equal(out, speech[: out.size])


def test_a_dropped_turn_leaves_the_queue() -> None:
    aec = EchoCanceller()
    aec.add_reference(np.ones(16000, np.int16), 16000, "t1")
    aec.add_reference(np.ones(8000, np.int16), 16000, "t2")
    aec.drop("t1")
    assert aec.queued_ms == 500


def _listen(listener: Listener, mic: np.ndarray) -> list[Action]:
    actions: list[Action] = []
    for i in range(0, mic.size, 640):  # 40 ms frames, as clients send them
        actions += listener.feed(np.clip(mic[i : i + 640], -32768, 32767).astype(np.int16))
    return actions


def test_double_talk_over_a_cancelled_echo_then_the_next_reply_after_a_restart() -> None:
    """Real AEC3, Silero and Piper speech through the worker's Listener.

    A person at the echo's own level (0 dB, 120 ms late) over a converged
    canceller starts speech through the double-talk path alone (the usual
    run of speech is set out of reach here); after the barge-in the speaker
    stops and the canceller restarts; the next reply's echo alone, on that
    fresh canceller, starts nothing.
    """
    from vad_stt_worker.settings import SttSettings
    from vad_stt_worker.wake import WakeModels
    from voicefleet.models import openwakeword_dir

    config = TurnConfig.from_settings(SttSettings(aec_min_speech_ms=5000))
    wake = WakeModels(openwakeword_dir())
    reply = say(
        "Sure. The forecast for tomorrow is sunny with a high of twenty two degrees, "
        "and a light breeze from the west in the afternoon.",
        RATE,
    )
    echo = np.concatenate([np.zeros(120 * 16, np.float32), soxr.resample(reply, RATE, 16000).astype(np.float32)])
    person = say("Wait, set a timer for ten minutes instead.", length_scale=1.2).astype(np.float32)
    at = 2 * 16000
    mic = echo[: at + person.size].copy()
    mic[at:] += person

    listener = Listener(config, wake, None, None, EchoCanceller())
    assert listener.aec is not None
    listener.aec.add_reference(reply, RATE, "t1")
    listener.set_playback(True)
    listener.aec.playback_started()
    cut = at + 8000  # the speaker stops half a second into the person's sentence
    starts = [a for a in _listen(listener, mic[:cut]) if isinstance(a, SpeechStart)]
    assert len(starts) == 1 and starts[0].over_playback and starts[0].position >= at, starts
    listener.set_playback(False)
    listener.aec.playback_finished()
    listener.aec.drop("t1")
    listener.restart_aec()
    _listen(listener, mic[cut:] - echo[cut : mic.size])  # the rest of the sentence, the echo gone
    _listen(listener, np.zeros(2 * 16000, np.float32))  # the turn ends

    # The next reply on the fresh canceller: its echo alone, as loud as the reply, starts nothing.
    listener.aec.add_reference(reply, RATE, "t2")
    listener.set_playback(True)
    listener.aec.playback_started()
    assert [a for a in _listen(listener, echo) if isinstance(a, SpeechStart)] == []
