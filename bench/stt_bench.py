"""STT benchmark: word error rate, latency after end of speech, real-time factor, VAD and wake costs.

    python bench/stt_bench.py --make-corpus bench/results/corpus   # ~20 commands spoken by Piper
    python bench/stt_bench.py --corpus bench/results/corpus         # measure (needs Redis for latency)
    python bench/stt_bench.py --make-pause-corpus bench/results/pauses  # the same, 500 ms pause mid-sentence
    python bench/stt_bench.py --corpus bench/results/pauses --output stt_pauses.json

A corpus is a folder of WAV files, each with its reference transcript in a
.txt file beside it. Two passes:

* offline: every file through the worker's own listener and recognizer
  (``vad_stt_worker transcribe`` path): WER, real-time factor, VAD ms per
  32 ms chunk, wake word ms per 80 ms frame;
* streaming: the real worker (in process, on the real Redis) gets each file
  as a live session in real time, 40 ms frames; latency is measured from the
  wall time at which the acoustic end of speech was sent to the moment the
  final transcript was ready (``ts["transcript"]``) and seen by the client.

Prints a table and writes bench/results/stt.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import platform
import sys
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vad_stt_worker.cli import transcribe_audio  # noqa: E402
from vad_stt_worker.hallucinations import normalize_text  # noqa: E402
from vad_stt_worker.models import Models  # noqa: E402
from vad_stt_worker.settings import SttSettings  # noqa: E402
from vad_stt_worker.stt import normalize_language  # noqa: E402
from vad_stt_worker.turn import TurnConfig  # noqa: E402
from voicefleet.audio import BUS_RATE, read_wav  # noqa: E402
from voicefleet.bus import AUDIO_MAXLEN, Bus  # noqa: E402
from voicefleet.messages import AudioFrame, SessionEnded, TranscriptFinal, new_id  # noqa: E402
from voicefleet.settings import BusSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FRAME = 640  # 40 ms
TRAIL_S = 1.2  # silence streamed after the end of speech, at least

COMMANDS = [
    "Turn on the kitchen lights.",
    "What's the weather like tomorrow morning?",
    "Set a timer for ten minutes.",
    "Remind me to call my mother this evening.",
    "Play some relaxing music in the living room.",
    "How long does it take to drive to the airport?",
    "Add milk, eggs and bread to my shopping list.",
    "Turn the thermostat down a little.",
    "What time is it in Tokyo right now?",
    "Read me the latest news headlines.",
    "Close the blinds in the bedroom.",
    "Who wrote the novel Pride and Prejudice?",
    "Lock the front door and turn off the porch light.",
    "Tell me a short joke.",
    "How many ounces are in a pound?",
    "Stop.",
    "Send a message to Alex saying I will be late.",
    "What is on my calendar for Friday afternoon?",
    "Make the lights in the office a bit brighter.",
    "Cancel my alarm for tomorrow.",
]

_NUMBERS = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
    "11": "eleven",
    "12": "twelve",
    "15": "fifteen",
    "20": "twenty",
    "30": "thirty",
}


def wer_words(text: str) -> list[str]:
    return [_NUMBERS.get(w, w) for w in normalize_text(text).split()]


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, other in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (word != other))
    return row[-1]


def speech_end_s(audio: np.ndarray, window: int = 160) -> float:
    """Last 10 ms window louder than -40 dBFS: the acoustic end of speech."""
    frames = audio[: audio.size - audio.size % window].astype(np.float32).reshape(-1, window)
    loud = np.nonzero(np.sqrt(np.mean(frames**2, axis=1)) > 0.01 * 32768)[0]
    return float((loud[-1] + 1) * window / BUS_RATE) if loud.size else 0.0


# ----------------------------------------------------------------------------- corpus


def longest_pause(audio: np.ndarray, window: int = 160) -> int:
    """The middle of the longest quiet stretch inside the speech: a word boundary of the sentence."""
    frames = audio[: audio.size - audio.size % window].astype(np.float32).reshape(-1, window)
    quiet = np.sqrt(np.mean(frames**2, axis=1)) < 0.01 * 32768
    loud = np.nonzero(~quiet)[0]
    best, best_len, run_start = 0, 0, None
    for i in range(loud[0], loud[-1] + 1):
        if quiet[i] and run_start is None:
            run_start = i
        elif not quiet[i] and run_start is not None:
            if i - run_start > best_len:
                best, best_len = (run_start + i) // 2, i - run_start
            run_start = None
    return best * window


def make_pause_corpus(folder: Path, pause_s: float = 0.5) -> None:
    """COMMANDS spoken in one go, each with ``pause_s`` of silence spliced in at its longest inner pause.

    A person hesitating inside a sentence: the turn must not end there, and no word may be lost.
    """
    import soxr
    from piper import PiperVoice, SynthesisConfig

    from voicefleet.models import piper_voice

    folder.mkdir(parents=True, exist_ok=True)
    voice = PiperVoice.load(str(piper_voice()))
    config = SynthesisConfig(noise_scale=0.5, noise_w_scale=0.6)
    count = 0
    for i, text in enumerate(COMMANDS):
        speech = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, syn_config=config)])
        speech = soxr.resample(speech, voice.config.sample_rate, BUS_RATE).astype(np.int16)
        if len(text.split()) < 4:
            continue  # "Stop.": no inside to pause in
        cut = longest_pause(speech)
        pause, edge = np.zeros(int(BUS_RATE * pause_s), np.int16), np.zeros(int(BUS_RATE * 0.6), np.int16)
        audio = np.concatenate([edge, speech[:cut], pause, speech[cut:], edge, edge])
        write_item(folder / f"pause{i:02d}.wav", audio, BUS_RATE, text)
        count += 1
    print(f"wrote {count} WAV files with a {pause_s * 1000:.0f} ms pause inside each sentence to {folder}")


def make_corpus(folder: Path) -> None:
    """Speak COMMANDS with the packaged Piper voice, at varied speeds and sample rates."""
    from piper import PiperVoice, SynthesisConfig

    from voicefleet.models import piper_voice

    folder.mkdir(parents=True, exist_ok=True)
    voice = PiperVoice.load(str(piper_voice()))
    native = voice.config.sample_rate
    rng = np.random.default_rng(7)
    for i, text in enumerate(COMMANDS):
        scale = float(rng.choice([0.85, 0.95, 1.0, 1.1, 1.2]))
        config = SynthesisConfig(length_scale=scale, noise_scale=0.5, noise_w_scale=0.6)
        speech = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, syn_config=config)])
        lead, trail = np.zeros(int(native * rng.uniform(0.4, 0.9)), np.int16), np.zeros(int(native * 1.2), np.int16)
        audio = np.concatenate([lead, speech, trail])
        rate = native
        if i % 2:  # half at 16 kHz, half at Piper's own rate (exercises resampling)
            import soxr

            audio, rate = soxr.resample(audio, native, BUS_RATE).astype(np.int16), BUS_RATE
        write_item(folder / f"cmd{i:02d}.wav", audio, rate, text)
    print(f"wrote {len(COMMANDS)} WAV files with transcripts to {folder}")


def write_item(path: Path, audio: np.ndarray, rate: int, text: str) -> None:
    """One corpus item: the WAV and its reference transcript beside it."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(audio.tobytes())
    path.with_suffix(".txt").write_text(text + "\n")


def load_corpus(folder: Path) -> list[tuple[str, np.ndarray, str]]:
    items = []
    for wav in sorted(folder.glob("*.wav")):
        ref = wav.with_suffix(".txt")
        if ref.exists():
            items.append((wav.name, read_wav(wav), ref.read_text().strip()))
    if not items:
        raise SystemExit(f"no WAV files with a .txt beside them in {folder}")
    return items


# ----------------------------------------------------------------------------- passes


def offline_pass(items: list[tuple[str, np.ndarray, str]], models: Models, settings: SttSettings) -> dict:
    config = TurnConfig.from_settings(settings)
    language = normalize_language(settings.language)
    rows, edits, ref_words, stt_s, audio_s, utt_s = [], 0, 0, 0.0, 0.0, 0.0
    vad_ms, wake_ms = [], []
    endpoint_calls, endpoint_s = 0, 0.0
    for name, audio, ref in items:
        result = transcribe_audio(audio, models, config, language)
        errors = edit_distance(wer_words(result.text), wer_words(ref))
        edits, ref_words = edits + errors, ref_words + len(wer_words(ref))
        stt_s += result.stt_s
        audio_s += result.audio_s
        utt_s += sum(len(u["segments"]) and (u["end_s"] - u["start_s"]) for u in result.utterances)
        vad_ms.append(result.vad_ms_per_chunk)
        endpoint_calls, endpoint_s = endpoint_calls + result.endpoint_calls, endpoint_s + result.endpoint_s
        rows.append(
            {"file": name, "ref": ref, "hyp": result.text, "errors": errors, "stt_ms": round(result.stt_s * 1000)}
        )
    # Wake word cost: one detector over all the audio in 80 ms frames.
    detector = models.wake.detector("hey_jarvis")
    frames = 0
    started = time.perf_counter()
    for _, audio, _ in items:
        for offset in range(0, audio.size - 1279, 1280):
            detector.score(audio[offset : offset + 1280])
            frames += 1
    wake_ms.append(1000 * (time.perf_counter() - started) / max(1, frames))
    return {
        "files": len(items),
        "wer": edits / max(1, ref_words),
        "stt_rtf": stt_s / max(utt_s, 1e-6),
        "stt_ms_mean": 1000 * stt_s / len(items),
        "vad_ms_per_chunk": float(np.mean(vad_ms)),
        "wake_ms_per_frame": float(np.mean(wake_ms)),
        "endpoint_ms_per_call": 1000 * endpoint_s / endpoint_calls if endpoint_calls else None,
        "endpoint_calls_per_file": endpoint_calls / len(items),
        "rows": rows,
    }


@contextlib.asynccontextmanager
async def running_stt(models: Models, settings: SttSettings) -> AsyncIterator[Bus]:
    """An STT service under a private key prefix, ready; its keys are deleted afterwards."""
    from vad_stt_worker.worker import SttService

    bus_settings = BusSettings(key_prefix=f"vfbench-{new_id()[:8]}", health_ttl_s=2.0)
    service = SttService(settings.model_copy(update={"bus": bus_settings}), models=models)
    runner = asyncio.create_task(service.run())
    bus = Bus(bus_settings)
    try:
        while not service.ready:  # noqa: ASYNC110 - polls state set elsewhere
            await asyncio.sleep(0.05)
        yield bus
    finally:
        service.stop()
        await asyncio.wait_for(runner, 15)
        keys = [k async for k in bus.redis.scan_iter(match=bus.keys.all_keys_pattern())]
        if keys:
            await bus.redis.delete(*keys)
        await bus.close()


async def streaming_pass(items: list[tuple[str, np.ndarray, str]], models: Models, settings: SttSettings) -> dict:
    latencies, eot_lag, seen_lag, edits, ref_words, rows = [], [], [], 0, 0, []
    async with running_stt(models, settings) as bus:
        for name, audio, ref in items:
            row = await _stream_one(bus, audio)
            if row is None:
                rows.append({"file": name, "hyp": "", "latency_ms": None})
                edits += len(wer_words(ref))
                ref_words += len(wer_words(ref))
                continue
            final, text, count, speech_end, seen = row
            latency = final.ts["transcript"] - speech_end
            latencies.append(latency)
            eot_lag.append(final.ts["eot"] - speech_end)
            seen_lag.append(seen - speech_end)
            errors = edit_distance(wer_words(text), wer_words(ref))
            edits, ref_words = edits + errors, ref_words + len(wer_words(ref))
            rows.append(
                {
                    "file": name,
                    "hyp": text,
                    "finals": count,
                    "latency_ms": round(latency * 1000),
                    "eot_ms": round((final.ts["eot"] - speech_end) * 1000),
                }
            )
            print(f"  {name}: {latency * 1000:6.0f} ms  {text}", file=sys.stderr)

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)) * 1000) if values else None

    return {
        "wer": edits / max(1, ref_words),
        "latency_ms_p50": pct(latencies, 50),
        "latency_ms_p90": pct(latencies, 90),
        "eot_ms_p50": pct(eot_lag, 50),
        "eot_ms_p90": pct(eot_lag, 90),
        "client_seen_ms_p50": pct(seen_lag, 50),
        "client_seen_ms_p90": pct(seen_lag, 90),
        "missed": sum(r.get("latency_ms") is None for r in rows),
        "split": sum(r.get("finals", 1) > 1 for r in rows),
        "rows": rows,
    }


async def _stream_one(bus: Bus, audio: np.ndarray) -> tuple[TranscriptFinal, str, int, float, float] | None:
    """Stream one file as a live session: its last final, what the assistant is left to answer, timings.

    A sentence may come out as several finals (split at a pause); a final whose
    turn was cancelled (the speaker went on: barge-in) is not answered, so the
    text is the finals whose turns stand. Latency is that of the last final,
    the one after the acoustic end of speech.
    """
    sid = new_id()
    keys = bus.keys
    await bus.redis.hset(
        keys.session(sid),
        mapping={"user": "bench", "sample_rate": str(BUS_RATE), "wake_word": "", "language": "",
                 "created": str(time.time())},
    )
    await bus.redis.expire(keys.session(sid), 600)
    await bus.redis.zadd(keys.sessions, {sid: time.time()})
    await bus.redis.publish(keys.sessions_channel, sid)
    await asyncio.sleep(0.3)  # let the worker claim it, as a real session would be
    end_s = speech_end_s(audio)
    # The microphone stays open after the speech: a file cut right after its last word (bench/people.py's
    # clips) is followed by silence, or no turn would ever end.
    audio = np.concatenate([audio, np.zeros(max(0, int((end_s + TRAIL_S) * BUS_RATE) - audio.size), np.int16)])
    started_wall, started = time.time(), time.monotonic()
    for seq, offset in enumerate(range(0, audio.size, FRAME)):
        frame = AudioFrame(session_id=sid, seq=seq, audio=audio[offset : offset + FRAME].tobytes())
        await bus.add(keys.audio(sid), frame, maxlen=AUDIO_MAXLEN)
        ahead = started + (offset + FRAME) / BUS_RATE - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
    speech_end = started_wall + end_s
    finals: list[TranscriptFinal] = []
    last: bytes | str = "0"
    deadline = time.monotonic() + 10
    seen = time.time()
    # Done when a final covers the end of the speech (its end within 300 ms of the acoustic one).
    while time.monotonic() < deadline and not (finals and finals[-1].ts["speech_end"] >= speech_end - 0.3):
        for entry in await bus.read(keys.out(sid), last, block_ms=200):
            last = entry.id
            if isinstance(entry.message, TranscriptFinal):
                finals.append(entry.message)
                seen = time.time()
    # A barge-in on an earlier turn happened at the next SpeechStarted, before the later final.
    standing = [f.text for f in finals if not await bus.is_cancelled(sid, f.turn_id)]
    await bus.redis.zrem(keys.sessions, sid)
    await bus.add(keys.audio(sid), SessionEnded(session_id=sid, reason="bench"))
    return (finals[-1], " ".join(standing), len(finals), speech_end, seen) if finals else None


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--make-corpus", type=Path, metavar="DIR", help="write the Piper command corpus to DIR")
    parser.add_argument(
        "--make-pause-corpus", type=Path, metavar="DIR", help="write COMMANDS with a 500 ms pause inside each to DIR"
    )
    parser.add_argument("--corpus", type=Path, default=RESULTS / "corpus", help="folder of WAV + .txt pairs")
    parser.add_argument("--no-stream", action="store_true", help="skip the real-time streaming pass")
    parser.add_argument("--output", default="stt.json", help="file name under bench/results/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.make_corpus:
        make_corpus(args.make_corpus)
        return 0
    if args.make_pause_corpus:
        make_pause_corpus(args.make_pause_corpus)
        return 0
    if not args.corpus.exists():
        make_corpus(args.corpus)
    settings = SttSettings()
    items = load_corpus(args.corpus)
    loaded = time.perf_counter()
    models = Models.load(settings)
    load_s = time.perf_counter() - loaded
    offline = offline_pass(items, models, settings)
    streaming = None if args.no_stream else asyncio.run(streaming_pass(items, models, settings))
    report = {
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "settings": {
            "model": settings.model or "whisper-base (packaged)",
            "model_en": settings.model_en or "(same)",
            "device": settings.device,
            "compute_type": settings.compute_type or "auto",
            "encoder_window_s": settings.encoder_window_s,
            "language": settings.language,
            "eot_mode": settings.eot_mode,
            "eot_silence_ms": settings.eot_silence_ms,
            "eot_complete_ms": settings.eot_complete_ms,
            "eot_incomplete_ms": settings.eot_incomplete_ms,
            "speculate_after_ms": settings.speculate_after_ms,
        },
        "model_load_s": round(load_s, 2),
        "offline": offline,
        "streaming": streaming,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / args.output).write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nwritten to {RESULTS / args.output}")
    return 0


def print_table(report: dict) -> None:
    off, st = report["offline"], report["streaming"] or {}
    lines = [
        ("files", f"{off['files']}"),
        ("word error rate (offline)", f"{off['wer'] * 100:.1f} %"),
        ("word error rate (streaming)", f"{st['wer'] * 100:.1f} %" if st else "-"),
        ("sentences cut into several finals (streaming)", f"{st.get('split')}" if st else "-"),
        ("STT latency after end of speech p50", f"{st.get('latency_ms_p50')} ms" if st else "-"),
        ("STT latency after end of speech p90", f"{st.get('latency_ms_p90')} ms" if st else "-"),
        (
            "end-of-turn decision after end of speech p50/p90",
            f"{st.get('eot_ms_p50')} / {st.get('eot_ms_p90')} ms" if st else "-",
        ),
        (
            "final seen by client after end of speech p50/p90",
            f"{st.get('client_seen_ms_p50')} / {st.get('client_seen_ms_p90')} ms" if st else "-",
        ),
        ("Whisper real-time factor (per utterance)", f"{off['stt_rtf']:.3f}"),
        ("Whisper time per utterance (mean)", f"{off['stt_ms_mean']:.0f} ms"),
        ("VAD per 32 ms chunk", f"{off['vad_ms_per_chunk']:.2f} ms"),
        ("wake word per 80 ms frame", f"{off['wake_ms_per_frame']:.2f} ms"),
        (
            "end-of-turn model per call (calls per file)",
            f"{off['endpoint_ms_per_call']:.0f} ms ({off['endpoint_calls_per_file']:.1f})"
            if off.get("endpoint_ms_per_call") else "- (eot_mode=silence)",
        ),
        ("model load + warm-up", f"{report['model_load_s']:.1f} s"),
    ]
    width = max(len(k) for k, _ in lines)
    print(f"\n{'metric':<{width}}  value")
    print(f"{'-' * width}  {'-' * 14}")
    for key, value in lines:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
