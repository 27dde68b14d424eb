"""Barge-in over the assistant's own voice: the reply fed back into the microphone, with and without a person.

    .venv/bin/python bench/bargein.py                 # server-side echo cancellation (the default)
    .venv/bin/python bench/bargein.py --no-aec        # the echo guard alone (VF_STT_AEC=false), for comparison
    .venv/bin/python bench/bargein.py --room          # the echo through a room: 300 ms reverberation, a
                                                      # saturating speaker (what AEC3's linear filter cannot model)
    .venv/bin/python bench/bargein.py --people        # recordings of real people interrupt (bench/people.py)

Drives the real STT worker (``SttService``, real models) over the real Redis,
as the gateway and the TTS worker would: each trial is a fresh session whose
reply (Piper, at a 22.05 kHz client output rate) is put on the session's out
stream as ``AudioChunk``s, then ``playback_started`` and, in real time, 40 ms
microphone frames holding the reply's echo (gain 0, -6, -10 or -20 dB, 20 to
200 ms late) and, in half of the trials, a person speaking over it from
``PERSON_AT_S`` (a different sentence, with another speaking rate and pitch,
at the reply's own level); with ``--people``, a recording of one of five
real people (``bench/people.py``) instead, brought to the reply's level. When the worker cancels the reply's turn (what
the gateway turns into ``interrupted`` for the client, one pub/sub hop
later) the simulated client stops its speaker 50 ms later and reports
``playback_finished``, as the real clients do.

Reported: false interrupts (a cancel in an echo-only trial or before the
person spoke), detections per echo gain, latency from the onset of the
person's speech (energy, -40 dBFS) to the cancel, and from the onset of
speech as Silero hears it on the person's audio alone (``voiced_onset_s``:
recordings start with their room's noise, which at the reply's level is above
-40 dBFS, so the energy onset can fall up to 430 ms before the first word),
and words of the person's
sentence missing from the transcript that follows. Prints a table and writes
bench/results/bargein[_noaec][_room][_people].json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import people  # noqa: E402
from bench.common import summary, table, write  # noqa: E402
from bench.stt_bench import running_stt, wer_words  # noqa: E402
from vad_stt_worker.models import Models  # noqa: E402
from vad_stt_worker.settings import SttSettings  # noqa: E402
from voicefleet.audio import BUS_RATE  # noqa: E402
from voicefleet.bus import AUDIO_MAXLEN, Bus  # noqa: E402
from voicefleet.messages import (  # noqa: E402
    AudioChunk,
    AudioFrame,
    PlaybackFinished,
    PlaybackStarted,
    SessionEnded,
    SpeechStarted,
    TranscriptFinal,
    new_id,
)
from voicefleet.sessions import SessionRecord, Sessions  # noqa: E402

OUT_RATE = 22050  # the client's output rate: the worker resamples its reference
FRAME = 640  # 40 ms microphone frames
PERSON_AT_S = 2.0  # the person starts this far into the reply
GAINS_DB = [0.0, -6.0, -10.0, -20.0]
DELAYS_MS = [20, 60, 120, 200]
REPLIES = [
    "Sure. The forecast for tomorrow is sunny with a high of twenty two degrees, "
    "and a light breeze from the west in the afternoon.",
    "Here is a fun fact about the moon: it is slowly drifting away from the Earth, "
    "about four centimetres every year, because of the tides.",
]
PERSONS = [
    "Stop, what about the weekend?",
    "Wait, set a timer for ten minutes instead.",
    "No, turn off the kitchen light.",
    "Hold on, call my sister please.",
]
#: (length scale, pitch factor): the person is not the reply's voice as it is.
PERSON_VOICES = [(1.2, 0.88), (0.95, 1.12)]


@functools.lru_cache(maxsize=1)
def _voice() -> Any:
    from piper import PiperVoice

    from voicefleet.models import piper_voice

    return PiperVoice.load(str(piper_voice()))


#: The assistant's voice in the trials: "piper" (joe) or "hibari" (the English default since 2026-11-30).
REPLY_VOICE = "piper"


@functools.lru_cache(maxsize=1)
def _hibari() -> Any:
    from tts_worker.hibari_engine import HibariEngine

    return HibariEngine.load()


def reply_audio(text: str, rate: int) -> np.ndarray:
    """The assistant's reply in ``REPLY_VOICE``, int16 at ``rate`` (what the TTS worker would send)."""
    if REPLY_VOICE == "piper":
        return synth(text, rate)
    import soxr

    engine = _hibari()
    audio = np.concatenate(list(engine.synthesize(text)))
    return soxr.resample(audio, engine.sample_rate, rate).astype(np.int16)


@functools.lru_cache(maxsize=32)
def synth(text: str, rate: int, length_scale: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """``text`` by the Piper voice at ``rate``; ``pitch`` != 1 shifts its pitch (and tempo) by resampling."""
    import soxr
    from piper import SynthesisConfig

    voice = _voice()
    config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
    audio = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, syn_config=config)])
    # Played as if recorded at pitch * rate: a higher (or lower) voice.
    return soxr.resample(audio, voice.config.sample_rate * pitch, rate).astype(np.int16)


def active_rms(audio: np.ndarray, window: int = 160) -> float:
    """RMS over the 10 ms windows louder than -40 dBFS: the level of the speech, pauses left out."""
    frames = audio[: audio.size - audio.size % window].astype(np.float32).reshape(-1, window)
    levels = np.sqrt(np.mean(frames**2, axis=1))
    loud = frames[levels > 0.01 * 32768]
    return float(np.sqrt(np.mean(loud**2))) if loud.size else 1.0


def person_voice(said: str, length_scale: float, pitch: float) -> np.ndarray:
    """A Piper voice not the reply's own, saying ``said``."""
    return synth(said, BUS_RATE, length_scale, pitch).astype(np.float32)


def recorded_person(clip: people.Clip) -> np.ndarray:
    """A real person's recording, brought to the level of the reply's voice."""
    voice = people.audio(clip).astype(np.float32)
    level = active_rms(synth(REPLIES[0], BUS_RATE))
    return np.clip(voice * level / active_rms(voice), -32768, 32767)


def speech_onset_s(audio: np.ndarray, window: int = 160) -> float:
    """First 10 ms window louder than -40 dBFS: the acoustic onset of speech."""
    frames = audio[: audio.size - audio.size % window].astype(np.float32).reshape(-1, window)
    loud = np.nonzero(np.sqrt(np.mean(frames**2, axis=1)) > 0.01 * 32768)[0]
    return float(loud[0] * window / BUS_RATE) if loud.size else 0.0


def voiced_onset_s(audio: np.ndarray, run: int = 3) -> float:
    """Start of the first ``run`` chunks (32 ms) Silero calls speech (p >= 0.5) in ``audio`` alone, no echo.

    Recordings of people carry their room's noise and a margin before the first
    word, and brought to the reply's level that noise is often above -40 dBFS:
    the energy onset is then the clip's first sample, up to 430 ms before the
    first word (the meeting clip). This is when a listener with no echo to
    fight would hear speech start; never before the energy onset, and on
    clean speech within a chunk or two of it.
    """
    from vad_stt_worker.vad import CHUNK_SAMPLES, VoiceActivity

    vad = VoiceActivity()
    lead = 16 * CHUNK_SAMPLES  # silence first, as the detector has had before the person speaks
    padded = np.concatenate([np.zeros(lead, np.int16), audio.astype(np.int16)])
    starts = range(0, padded.size - CHUNK_SAMPLES + 1, CHUNK_SAMPLES)
    speech = [vad.probability(padded[s : s + CHUNK_SAMPLES]) >= 0.5 for s in starts]
    energy = speech_onset_s(audio)
    for index, start in enumerate(starts):
        if all(speech[index : index + run]):  # a run of speech, not one chunk of noise
            return max(energy, (start - lead) / BUS_RATE)
    return energy


def room(echo: np.ndarray, rt60_s: float = 0.3, seed: int = 7) -> np.ndarray:
    """The speaker's sound through a room: soft clipping, then a decaying noise tail (RT60) after the direct path."""
    rng = np.random.default_rng(seed)
    peak = float(np.abs(echo).max()) or 1.0
    driven = np.tanh(1.5 * echo / peak) * peak / np.tanh(1.5)  # a small speaker pushed hard
    n = int(rt60_s * BUS_RATE)
    tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)  # -60 dB at rt60
    ir = np.concatenate([[1.0], np.zeros(int(0.003 * BUS_RATE)), 0.25 * tail / np.sqrt(np.sum(tail**2))])
    wet = np.convolve(driven, ir)[: echo.size + n]
    return (wet * np.sqrt(np.mean(echo**2)) / (np.sqrt(np.mean(wet**2)) or 1.0)).astype(np.float32)


def words_lost(heard: str, said: str) -> int:
    """Words of ``said`` that ``heard`` lacks (bag of words: an interrupting sentence is short)."""
    pool = wer_words(heard)
    lost = 0
    for word in wer_words(said):
        if word in pool:
            pool.remove(word)
        else:
            lost += 1
    return lost


async def trial(
    bus: Bus, reply_text: str, gain_db: float, delay_ms: int, person: tuple[str, np.ndarray] | None,
    in_room: bool = False,
) -> dict[str, Any]:
    """One session: the reply plays, its echo (and maybe a person) goes into the microphone."""
    import soxr

    keys, sid, turn = bus.keys, new_id(), new_id()
    sessions = Sessions(bus)
    await sessions.save(sid, SessionRecord(user="bench", created=time.time()))
    await sessions.announce(sid)
    await bus.redis.set(keys.current_turn(sid), turn)
    await asyncio.sleep(0.3)  # let the worker claim it, as a real session would be

    reply = reply_audio(reply_text, OUT_RATE)
    step = OUT_RATE // 10
    for index, offset in enumerate(range(0, reply.size, step)):  # as the TTS worker writes it
        last = offset + step >= reply.size
        await bus.emit(AudioChunk(session_id=sid, turn_id=turn, seq=1, index=index, last=last, final=last,
                                  sample_rate=OUT_RATE, audio=reply[offset : offset + step].astype("<i2").tobytes()))
    echo = soxr.resample(reply, OUT_RATE, BUS_RATE).astype(np.float32)
    echo = (room(echo) if in_room else echo) * 10 ** (gain_db / 20)
    mic = np.concatenate([np.zeros(int(delay_ms * BUS_RATE / 1000), np.float32), echo, np.zeros(BUS_RATE, np.float32)])
    onset_sample = voiced_sample = None
    said = ""
    if person is not None:
        said, voice = person
        at = int(PERSON_AT_S * BUS_RATE)
        mic = np.concatenate([mic, np.zeros(max(0, at + voice.size + BUS_RATE - mic.size), np.float32)])
        mic[at : at + voice.size] += voice
        onset_sample = at + int(speech_onset_s(voice.astype(np.int16)) * BUS_RATE)
        voiced_sample = at + int(voiced_onset_s(voice.astype(np.int16)) * BUS_RATE)
    echo_end = int(delay_ms * BUS_RATE / 1000) + echo.size
    echo_track = echo_in(mic.size, echo, delay_ms)

    cancelled_at: list[float] = []

    async def watch_cancel() -> None:
        async for cancel in bus.cancels():
            if cancel.session_id == sid:
                cancelled_at.append(time.time())
                return

    watcher = asyncio.create_task(watch_cancel())
    await asyncio.sleep(0.05)  # subscribed
    await bus.add(keys.audio(sid), PlaybackStarted(session_id=sid), maxlen=AUDIO_MAXLEN)
    started_wall, started = time.time(), time.monotonic()
    stop_echo_at: int | None = None
    playing = True
    for seq, offset in enumerate(range(0, mic.size, FRAME)):
        frame = mic[offset : offset + FRAME].copy()
        if cancelled_at and stop_echo_at is None:  # the client stops its speaker ~50 ms after the cancel
            stop_echo_at = offset + int(0.05 * BUS_RATE)
        if stop_echo_at is not None or offset >= echo_end:
            cut = max(0, (stop_echo_at if stop_echo_at is not None else echo_end) - offset)
            if cut < frame.size:  # take the echo out of the rest of this frame
                tail = echo_track[offset + cut : offset + frame.size]
                frame[cut : cut + tail.size] -= tail
                if playing:
                    playing = False
                    await bus.add(keys.audio(sid), PlaybackFinished(session_id=sid), maxlen=AUDIO_MAXLEN)
        pcm = np.clip(frame, -32768, 32767).astype("<i2").tobytes()
        await bus.add(keys.audio(sid), AudioFrame(session_id=sid, seq=seq, audio=pcm), maxlen=AUDIO_MAXLEN)
        ahead = started + (offset + FRAME) / BUS_RATE - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)

    final: TranscriptFinal | None = None
    speech_started = 0
    last: bytes | str = "0"
    deadline = time.monotonic() + (8.0 if person is not None else 1.0)
    while time.monotonic() < deadline and final is None:
        for entry in await bus.read(keys.out(sid), last, block_ms=200):
            last = entry.id
            if isinstance(entry.message, SpeechStarted):
                speech_started += 1
            elif isinstance(entry.message, TranscriptFinal):
                final = entry.message
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await bus.redis.zrem(keys.sessions, sid)
    await bus.add(keys.audio(sid), SessionEnded(session_id=sid, reason="bench"))

    row: dict[str, Any] = {"gain_db": gain_db, "delay_ms": delay_ms, "person": person is not None,
                           "speech_started": speech_started}
    cancel_s = cancelled_at[0] - started_wall if cancelled_at else None
    if onset_sample is None:
        row["false_interrupt"] = cancel_s is not None
    else:
        onset_s = onset_sample / BUS_RATE
        row["false_interrupt"] = cancel_s is not None and cancel_s < onset_s
        row["detected"] = cancel_s is not None and cancel_s >= onset_s
        row["latency_ms"] = round((cancel_s - onset_s) * 1000) if row["detected"] else None
        assert voiced_sample is not None
        row["latency_speech_ms"] = round((cancel_s - voiced_sample / BUS_RATE) * 1000) if row["detected"] else None
        row["said"], row["heard"] = said, final.text if final else ""
        row["words_lost"] = words_lost(row["heard"], said) if row["detected"] else None
        row["first_word_kept"] = bool(row["heard"]) and wer_words(row["heard"])[:1] == wer_words(said)[:1]
    return row


def echo_in(size: int, echo: np.ndarray, delay_ms: int) -> np.ndarray:
    """The echo alone, placed as in the microphone track of ``size`` samples."""
    track = np.zeros(size, np.float32)
    start = int(delay_ms * BUS_RATE / 1000)
    track[start : start + echo.size] = echo[: max(0, size - start)]
    return track


async def run(aec: bool, in_room: bool = False, real_people: bool = False) -> dict[str, Any]:
    settings = SttSettings(aec=aec, scan_interval_s=0.3)
    models = Models.load(settings, warm=True)
    rows: list[dict[str, Any]] = []
    async with running_stt(models, settings) as bus:
        n = spoken = 0
        for gain in GAINS_DB:
            for delay in DELAYS_MS:
                for with_person in (False, True):
                    person = None
                    if with_person and real_people:
                        clip = people.CLIPS[spoken % len(people.CLIPS)]
                        person = (clip.text, recorded_person(clip))
                        spoken += 1
                    elif with_person:
                        # every sentence in every voice, across the conditions
                        length_scale, pitch = PERSON_VOICES[(spoken // len(PERSONS)) % len(PERSON_VOICES)]
                        said = PERSONS[spoken % len(PERSONS)]
                        person = (said, person_voice(said, length_scale, pitch))
                        spoken += 1
                    row = await trial(bus, REPLIES[n % len(REPLIES)], gain, delay, person, in_room)
                    n += 1
                    rows.append(row)
                    print(f"  {gain:5.0f} dB {delay:4d} ms {'person' if with_person else 'echo  '}: "
                          f"false={row['false_interrupt']} detected={row.get('detected', '-')} "
                          f"latency={row.get('latency_ms', '-')} heard={row.get('heard', '')!r}", file=sys.stderr)

    persons = [r for r in rows if r["person"]]
    by_gain = []
    for gain in GAINS_DB:
        these = [r for r in persons if r["gain_db"] == gain]
        detected = [r for r in these if r["detected"]]
        lost = [r["words_lost"] for r in detected]
        by_gain.append({
            "echo_db": gain,
            "detected": f"{len(detected)}/{len(these)}",
            "detection_rate": len(detected) / max(1, len(these)),
            "false_interrupts": sum(r["false_interrupt"] for r in rows if r["gain_db"] == gain),
            "latency_p50_ms": summary([r["latency_ms"] for r in detected])["p50"],
            "speech_p50_ms": summary([r["latency_speech_ms"] for r in detected])["p50"],
            "words_lost": sum(lost),
            "first_word_kept": f"{sum(r['first_word_kept'] for r in detected)}/{len(detected)}",
        })
    latencies = [r["latency_ms"] for r in persons if r["detected"]]
    return {
        "aec": aec,
        "room": in_room,
        "people": real_people,
        "false_interrupts": sum(r["false_interrupt"] for r in rows),
        "trials": len(rows),
        "latency_ms": summary(latencies),
        "latency_speech_ms": summary([r["latency_speech_ms"] for r in persons if r["detected"]]),
        "words_lost": sum(r["words_lost"] or 0 for r in persons),
        "words_said": sum(len(wer_words(r["said"])) for r in persons if r["detected"]),
        "by_gain": by_gain,
        "rows": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-aec", action="store_true", help="the echo guard alone, no echo cancellation")
    parser.add_argument("--room", action="store_true", help="reverberation and a saturating speaker on the echo")
    parser.add_argument("--people", action="store_true",
                        help="recordings of real people interrupt, not Piper voices (bench/people.py)")
    parser.add_argument("--reply-voice", choices=["piper", "hibari"], default="piper",
                        help="the assistant's voice whose echo comes back (hibari: the English default)")
    args = parser.parse_args()
    global REPLY_VOICE
    REPLY_VOICE = args.reply_voice
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    report = asyncio.run(run(aec=not args.no_aec, in_room=args.room, real_people=args.people))
    print(table(report["by_gain"], ["echo_db", "detected", "false_interrupts", "latency_p50_ms", "speech_p50_ms",
                                    "words_lost", "first_word_kept"]))
    lat, speech = report["latency_ms"], report["latency_speech_ms"]
    print(f"false interrupts {report['false_interrupts']} in {report['trials']} trials; "
          f"latency onset -> cancel p50 {lat['p50']:.0f} ms p90 {lat['p90']:.0f} ms "
          f"(from the speech onset: p50 {speech['p50']:.0f} ms p90 {speech['p90']:.0f} ms); "
          f"words lost {report['words_lost']} of {report['words_said']}")
    name = "bargein" + ("_noaec" if args.no_aec else "") + ("_room" if args.room else "")
    name += "_hibari" if args.reply_voice == "hibari" else ""
    path = write(name + ("_people" if args.people else ""), report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
