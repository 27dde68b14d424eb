"""Barge-in offline: the bench's mixes through the worker's canceller, Silero and turn rule, no Redis, no clock.

    .venv/bin/python bench/bargein_offline.py --people          # where the time goes, per trial
    .venv/bin/python bench/bargein_offline.py --people --room --chunks   # and the chunk-by-chunk trace

Builds each trial's microphone exactly as ``bench/bargein.py`` does (same
replies, echo gains and delays, people or Piper voices, ``--room``), runs it
through ``voicefleet.aec.EchoCanceller``, ``VoiceActivity`` and
``TurnDetector`` as the worker's ``Listener`` does, and reports, for each
trial, the onset used by the live bench (-40 dBFS), the speech onset (Silero
on the clean clip), the chunk where the rule started speech, and the
decision's lag from each onset. No transport, no Whisper: it explains the
live bench's latency, it does not replace it (the live bench adds the 40 ms
frames, the read and the cancel broadcast).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import people  # noqa: E402
from bench.bargein import (  # noqa: E402
    DELAYS_MS,
    GAINS_DB,
    OUT_RATE,
    PERSON_AT_S,
    PERSON_VOICES,
    PERSONS,
    REPLIES,
    echo_in,
    person_voice,
    recorded_person,
    room,
    speech_onset_s,
    synth,
    voiced_onset_s,
)
from bench.common import summary  # noqa: E402
from vad_stt_worker.audio import level_db  # noqa: E402
from vad_stt_worker.settings import SttSettings  # noqa: E402
from vad_stt_worker.turn import CHUNK, SpeechStart, TurnConfig, TurnDetector  # noqa: E402
from vad_stt_worker.vad import VoiceActivity  # noqa: E402
from voicefleet.aec import EchoCanceller  # noqa: E402
from voicefleet.audio import BUS_RATE  # noqa: E402

FRAME = 640


def one(reply_text: str, gain_db: float, delay_ms: int, person: tuple[str, np.ndarray] | None, in_room: bool,
        config: TurnConfig, trace: bool = False) -> dict[str, Any]:
    import soxr

    reply = synth(reply_text, OUT_RATE)
    echo = soxr.resample(reply, OUT_RATE, BUS_RATE).astype(np.float32)
    echo = (room(echo) if in_room else echo) * 10 ** (gain_db / 20)
    mic = np.concatenate([np.zeros(int(delay_ms * BUS_RATE / 1000), np.float32), echo, np.zeros(BUS_RATE, np.float32)])
    onset = voiced = None
    if person is not None:
        _, voice = person
        at = int(PERSON_AT_S * BUS_RATE)
        mic = np.concatenate([mic, np.zeros(max(0, at + voice.size + BUS_RATE - mic.size), np.float32)])
        mic[at : at + voice.size] += voice
        onset = at + int(speech_onset_s(voice.astype(np.int16)) * BUS_RATE)
        voiced = at + int(voiced_onset_s(voice.astype(np.int16)) * BUS_RATE)
    echo_end = int(delay_ms * BUS_RATE / 1000) + echo.size
    track = echo_in(mic.size, echo, delay_ms)
    aec = EchoCanceller()
    aec.add_reference(reply, OUT_RATE, "t")
    aec.playback_started()
    detector = TurnDetector(config)
    detector.set_playback(True)
    vad = VoiceActivity()
    pending = np.zeros(0, np.int16)
    started: int | None = None
    rows = []
    stop_at: int | None = None
    for offset in range(0, mic.size, FRAME):
        frame = mic[offset : offset + FRAME].copy()
        if started is not None and stop_at is None:
            stop_at = offset + int(0.05 * BUS_RATE)
        end_here = stop_at if stop_at is not None else echo_end
        if offset + FRAME > end_here:
            cut = max(0, end_here - offset)
            tail = track[offset + cut : offset + frame.size]
            frame[cut : cut + tail.size] -= tail
            if detector.playing:
                detector.set_playback(False)
                aec.playback_finished()
        raw = np.clip(frame, -32768, 32767).astype(np.int16)
        clean = aec.process(raw)
        detector.echo_cancelled = aec.active
        stats = getattr(aec, "stats", None)
        pending = np.concatenate([pending, clean])
        while pending.size >= CHUNK:
            chunk, pending = pending[:CHUNK], pending[CHUNK:]
            pos = detector.position
            p = vad.probability(chunk)
            raw_chunk = np.clip(mic[pos : pos + CHUNK], -32768, 32767).astype(np.int16)
            for action in detector.on_chunk(chunk, p, level_db(raw_chunk)):
                if isinstance(action, SpeechStart) and started is None and action.over_playback:
                    started = detector.position
            if trace:
                rows.append((pos, p, level_db(chunk), level_db(mic[pos : pos + CHUNK].astype(np.int16)),
                             detector.echo.echo_db, stats))
        if started is not None and offset > started + BUS_RATE:
            break
    out: dict[str, Any] = {"gain_db": gain_db, "delay_ms": delay_ms, "person": person is not None}
    if person is None:
        out["false"] = started is not None
    else:
        assert onset is not None and voiced is not None
        out["false"] = started is not None and started < onset
        out["detected"] = started is not None and started >= onset
        out["lag_ms"] = round((started - onset) * 1000 / BUS_RATE) if out["detected"] else None
        out["lag_voiced_ms"] = round((started - voiced) * 1000 / BUS_RATE) if out["detected"] else None
        out["onset_ms"], out["voiced_ms"] = round(onset / 16), round(voiced / 16)
        out["said"] = person[0]
    if trace:
        out["trace"] = rows
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", action="store_true")
    parser.add_argument("--room", action="store_true")
    parser.add_argument("--chunks", action="store_true", help="print the chunk trace around each person's onset")
    parser.add_argument("--set", action="append", default=[], help="TurnConfig field=value (as the settings)")
    args = parser.parse_args()
    updates = dict(item.split("=", 1) for item in args.set)
    settings = SttSettings(**updates)
    config = TurnConfig.from_settings(settings)
    rows = []
    n = spoken = 0
    for gain in GAINS_DB:
        for delay in DELAYS_MS:
            for with_person in (False, True):
                person = None
                if with_person and args.people:
                    clip = people.CLIPS[spoken % len(people.CLIPS)]
                    person = (clip.name, recorded_person(clip))
                    spoken += 1
                elif with_person:
                    length_scale, pitch = PERSON_VOICES[(spoken // len(PERSONS)) % len(PERSON_VOICES)]
                    said = PERSONS[spoken % len(PERSONS)]
                    person = (said, person_voice(said, length_scale, pitch))
                    spoken += 1
                row = one(REPLIES[n % len(REPLIES)], gain, delay, person, args.room, config, args.chunks)
                n += 1
                rows.append(row)
                line = f"{gain:5.0f} dB {delay:4d} ms {'person' if with_person else 'echo  '} false={row['false']}"
                if with_person:
                    line += (f" det={row['detected']} lag={row['lag_ms']} lag_voiced={row['lag_voiced_ms']} "
                             f"(onset {row['onset_ms']} voiced {row['voiced_ms']}) {row['said']}")
                print(line, flush=True)
                if args.chunks and with_person:
                    for pos, p, lev, raw, edb, _ in row["trace"]:
                        if row["onset_ms"] - 200 <= pos / 16 <= row["onset_ms"] + 700:
                            print(f"    {pos / 16:7.0f} p={p:.2f} clean={lev:6.1f} raw={raw:6.1f} echo_db={edb:6.1f}")
    persons = [r for r in rows if r["person"]]
    lags = [r["lag_ms"] for r in persons if r["detected"]]
    vlags = [r["lag_voiced_ms"] for r in persons if r["detected"]]
    print(f"false {sum(r['false'] for r in rows)}/{len(rows)} detected {len(lags)}/{len(persons)} "
          f"lag p50/p90 {summary(lags)['p50']:.0f}/{summary(lags)['p90']:.0f} ms; from the voiced onset "
          f"{summary(vlags)['p50']:.0f}/{summary(vlags)['p90']:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
