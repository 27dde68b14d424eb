"""Benchmark of the TTS worker: time to first audio, real-time factor, intelligibility.

One TTS worker per configuration (voice, ONNX threads, first-piece cutting)
runs in this process against the real Redis (a key prefix of its own) and
speaks typical reply sentences, one SpeakRequest at a time, as the first
sentence of a turn. The configurations take turns sentence pass by sentence
pass (A, B, C, then C, B, A...), so load from other work on the machine falls
on all of them alike. A client reads the session's out stream and measures,
per sentence:

* first audio: SpeakRequest enqueued -> first AudioChunk read by the client;
* real-time factor (RTF): enqueued -> last chunk read, over the audio length;
* engine RTF: the voice's synthesis time alone over the audio length;
* where the first audio's wait went (p50): ``queue`` (enqueued -> the worker
  starts), ``synth`` (start -> first piece ready), ``delivery`` (-> client).

"short" sentences have at most 60 characters, "long" ones more (those are cut
at their first clause unless ``no-first-cut``).

Every configuration runs alone and while SmolLM2 generates continuously in a
background thread (llama.cpp, the LLM the fleet ships), as it does on a
one-machine install while a reply streams.

``--wer`` adds intelligibility: each voice speaks the sentences of
bench/data/tts_sentences_en.txt through the worker (normalization,
resampling to 16 kHz), Whisper base transcribes the audio, and the word error
rate is counted against the text, both sides read through the worker's
normalizer (so "18°C" and "eighteen degrees" are the same words).

    python bench/tts_bench.py [--runs 3] [--configs joe:1,joe:2,joe:1:nocut,hibari:1,hibari:2]
                              [--llm-threads 2] [--no-llm] [--wer]

A configuration is ``voice:threads`` (a voice name or a unique part of one),
``:nocut`` turning the first-piece cut off. Prints tables and writes
bench/results/tts.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import summary, table, write  # noqa: E402
from bench.stt_bench import edit_distance, wer_words  # noqa: E402
from tts_worker.normalize import normalize  # noqa: E402
from tts_worker.settings import TtsSettings  # noqa: E402
from tts_worker.voices import VoiceCatalog  # noqa: E402
from tts_worker.worker import TtsService, load_voices  # noqa: E402
from voicefleet.bus import Bus  # noqa: E402
from voicefleet.messages import AudioChunk, SpeakRequest, new_id  # noqa: E402
from voicefleet.models import smollm2_gguf, whisper_base_dir  # noqa: E402
from voicefleet.settings import BusSettings  # noqa: E402

SENTENCES = [
    "Sure!",
    "The capital of France is Paris.",
    "It will be sunny today, with a high of 22°C.",
    "Your meeting with Anna is at 3:30 pm on 2026-11-24.",
    "The sky looks blue because air scatters the short blue wavelengths of sunlight more than the red ones.",
    "To make a good cup of tea, boil fresh water, warm the pot, add one spoon of tea per cup, "
    "and let it steep for about four minutes before you pour.",
]
OUT_RATE = 16000
WER_SENTENCES = ROOT / "bench" / "data" / "tts_sentences_en.txt"


class LlmLoad:
    """SmolLM2 generating without pause in a background thread, counting tokens."""

    PROMPT = "<|im_start|>user\nTell me a long story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n"

    def __init__(self, threads: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(smollm2_gguf()), n_ctx=1024, n_threads=threads, verbose=False)
        self.tokens = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llm-load", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for _ in self.llm.create_completion(self.PROMPT, max_tokens=256, stream=True, temperature=0.8):
                self.tokens += 1
                if self._stop.is_set():
                    return

    def __enter__(self) -> LlmLoad:
        self._thread.start()
        time.sleep(1.0)  # past the prompt: measure while tokens stream
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


async def speak_once(bus: Bus, text: str, voice: str | None = None, keep: bool = False) -> dict[str, Any]:
    session = f"bench-{new_id()[:8]}"
    stream = bus.keys.out(session)
    request = SpeakRequest(
        session_id=session, turn_id=new_id(), seq=0, text=text, voice=voice, sample_rate=OUT_RATE, final=True
    )
    started, enqueued_at = time.perf_counter(), time.time()
    await bus.enqueue(bus.keys.speak, request)
    first = None
    stages: dict[str, float] = {}
    audio: list[bytes] = []
    samples = 0
    last_id: bytes | str = "0"
    while True:
        for entry in await bus.read(stream, last_id, block_ms=5000):
            last_id = entry.id
            msg = entry.message
            if not isinstance(msg, AudioChunk):
                continue
            if first is None:
                first = time.perf_counter()
                # Where the wait went, from the stage stamps (wall clock, same machine).
                stages = {
                    "queue_ms": (msg.ts["tts_start"] - enqueued_at) * 1000,
                    "synth_ms": (msg.ts["tts_first_audio"] - msg.ts["tts_start"]) * 1000,
                    "delivery_ms": (time.time() - msg.ts["tts_first_audio"]) * 1000,
                }
            samples += len(msg.audio) // 2
            if keep:
                audio.append(msg.audio)
            if msg.last:
                ended = time.perf_counter()
                await bus.redis.delete(stream)
                audio_s = samples / OUT_RATE
                return {
                    "first_ms": (first - started) * 1000,
                    "rtf": (ended - started) / audio_s if audio_s else float("nan"),
                    "audio_s": audio_s,
                    "audio": b"".join(audio),
                    **stages,
                }


_WHISPER_TIME = re.compile(r"\b(\d{1,2})[.:]?(\d{2})\s?([ap])\.?m\b\.?", re.IGNORECASE)


def spoken_words(text: str) -> list[str]:
    """The words of ``text`` as a voice says them: through the worker's normalizer, then WER-normalized.

    Used on both sides of the round trip, so "18°C" and "eighteen degrees Celsius" match. Whisper
    writes some times its own way ("7.45am", "745am"), which the normalizer would read as numbers:
    those are taken as times first, and "a m" / "p m" count as one word either way.
    """
    words = wer_words(normalize(_WHISPER_TIME.sub(r"\1:\2 \3m", text)))
    out: list[str] = []
    for word in words:
        if word == "m" and out and out[-1] in ("a", "p"):
            out[-1] += "m"
        else:
            out.append(word)
    return out


def engine_rtf(catalog: VoiceCatalog, voice: str, text: str) -> float:
    engine = catalog.resolve(voice)
    assert engine is not None
    started = time.perf_counter()
    samples = sum(len(part) for part in engine.synthesize(normalize(text)))
    return (time.perf_counter() - started) / (samples / engine.sample_rate)


class Config:
    """One worker under test: a voice, its ONNX threads, first-piece cutting; its own key prefix."""

    def __init__(self, spec: str, prefix: str) -> None:
        voice, threads, *rest = spec.split(":")
        self.spec, self.voice, self.threads, self.cut = spec, voice, int(threads), "nocut" not in rest
        self.bus_settings = BusSettings(key_prefix=prefix)
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.llm_tokens = 0.0
        self.llm_seconds = 0.0

    def add(self, load: str, key: str, value: float) -> None:
        self.samples.setdefault(load, {}).setdefault(key, []).append(value)


async def start(config: Config, catalog: VoiceCatalog) -> tuple[TtsService, asyncio.Task[None], Bus]:
    extra = {} if config.cut else {"first_piece_chars": 0}
    tts = TtsSettings(bus=config.bus_settings, concurrency=1, threads=config.threads, **extra)  # type: ignore[arg-type]
    service = TtsService(tts, catalog=catalog)
    task = asyncio.create_task(service.run())
    bus = Bus(config.bus_settings)
    while not service.ready:  # noqa: ASYNC110 - Service exposes a flag, not an event
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    engine = catalog.resolve(config.voice)
    if engine is None:
        raise SystemExit(f"no voice matches {config.voice!r}: {', '.join(catalog.names)}")
    config.voice = engine.name
    await speak_once(bus, "Warming up.", config.voice)
    return service, task, bus


async def one_pass(config: Config, bus: Bus, catalog: VoiceCatalog, load: str) -> None:
    for text in SENTENCES:
        result = await speak_once(bus, text, config.voice)
        config.add(load, "first_audio_ms", result["first_ms"])
        config.add(load, "first_audio_long_ms" if len(text) > 60 else "first_audio_short_ms", result["first_ms"])
        config.add(load, "rtf", result["rtf"])
        for stage in ("queue_ms", "synth_ms", "delivery_ms"):
            config.add(load, stage, result[stage])
    config.add(load, "engine_rtf", await asyncio.to_thread(engine_rtf, catalog, config.voice, SENTENCES[-2]))


def read_sentences(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


async def intelligibility(voices: list[tuple[Config, Bus]], sentences: list[str]) -> dict[str, Any]:
    """Round-trip word error rate: each voice speaks every sentence, Whisper base writes it down."""
    from faster_whisper import WhisperModel

    whisper = WhisperModel(str(whisper_base_dir()), device="cpu", compute_type="int8", cpu_threads=2)
    out: dict[str, Any] = {}
    for config, bus in voices:
        errors = words = 0
        misses = []
        for text in sentences:
            result = await speak_once(bus, text, config.voice, keep=True)
            pcm = np.frombuffer(result["audio"], dtype=np.int16).astype(np.float32) / 32768.0
            segments, _ = await asyncio.to_thread(whisper.transcribe, pcm, beam_size=5, language="en")
            heard = " ".join(s.text for s in segments)
            ref, hyp = spoken_words(text), spoken_words(heard)
            wrong = edit_distance(ref, hyp)
            errors, words = errors + wrong, words + len(ref)
            if wrong:
                misses.append({"text": text, "heard": heard.strip(), "errors": wrong})
        out[config.voice] = {"wer": errors / words, "errors": errors, "words": words, "misses": misses}
        print(f"WER {config.voice}: {errors}/{words} = {errors / words:.2%}", file=sys.stderr)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="passes over the sentences per configuration and load")
    parser.add_argument("--configs", default="joe:1,joe:2,joe:1:nocut,hibari:1,hibari:2",
                        help="voice:threads[:nocut], comma separated")  # fmt: skip
    parser.add_argument("--llm-threads", type=int, default=2, help="llama.cpp threads of the background LLM")
    parser.add_argument("--no-llm", action="store_true", help="skip the runs with the LLM generating")
    parser.add_argument("--wer", action="store_true", help="also the round-trip word error rate through Whisper")
    parser.add_argument("--wer-only", action="store_true", help="only the word error rate (no timing)")
    args = parser.parse_args()

    base = f"bench-tts-{new_id()[:6]}"
    configs = [Config(spec, f"{base}-{i}") for i, spec in enumerate(args.configs.split(","))]
    catalogs: dict[int, VoiceCatalog] = {}
    for config in configs:
        if config.threads not in catalogs:
            catalogs[config.threads] = await asyncio.to_thread(load_voices, TtsSettings(threads=config.threads))
    running = [await start(c, catalogs[c.threads]) for c in configs]
    loads = [] if args.wer_only else ["alone"] if args.no_llm else ["alone", "llm"]
    results: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    loadavg: dict[str, list[float]] = {}
    wer: dict[str, Any] = {}
    try:
        for load in loads:
            with LlmLoad(args.llm_threads) if load == "llm" else contextlib.nullcontext() as llm:
                for run in range(args.runs):
                    order = list(zip(configs, running, strict=True))
                    for config, (_, _, bus) in order if run % 2 == 0 else reversed(order):
                        tokens_before, started = (llm.tokens if llm else 0), time.perf_counter()
                        await one_pass(config, bus, catalogs[config.threads], load)
                        if llm:
                            config.llm_tokens += llm.tokens - tokens_before
                            config.llm_seconds += time.perf_counter() - started
                    loadavg.setdefault(load, []).append(os.getloadavg()[0])
                    print(f"done: pass {run + 1} / {load}", file=sys.stderr)
            for config in configs:
                measured = {key: summary(values) for key, values in config.samples[load].items()}
                tok_s = config.llm_tokens / config.llm_seconds if load == "llm" and config.llm_seconds else 0.0
                # Other work on the machine skews every figure: keep the load beside them.
                load_avg = max(loadavg[load])
                results.append({"config": config.spec, "voice": config.voice, "threads": config.threads,
                                "first_cut": config.cut, "load": load, **measured, "llm_tokens_per_s": tok_s,
                                "loadavg_1m_max": load_avg})  # fmt: skip
                rows.append({
                    "config": config.spec, "load": load,
                    "first p50 ms": measured["first_audio_ms"]["p50"],
                    "first p90 ms": measured["first_audio_ms"]["p90"],
                    "short p50": measured["first_audio_short_ms"]["p50"],
                    "long p50": measured["first_audio_long_ms"]["p50"],
                    "queue": measured["queue_ms"]["p50"], "synth": measured["synth_ms"]["p50"],
                    "delivery": measured["delivery_ms"]["p50"],
                    "RTF p50": measured["rtf"]["p50"], "engine RTF": measured["engine_rtf"]["p50"],
                    "LLM tok/s": tok_s, "loadavg max": load_avg,
                })  # fmt: skip
        if args.wer or args.wer_only:
            voices = {c.voice: (c, bus) for c, (_, _, bus) in zip(configs, running, strict=True) if c.cut}
            wer = await intelligibility(list(voices.values()), read_sentences(WER_SENTENCES))
    finally:
        for service, task, bus in running:
            service.stop()
            await asyncio.wait_for(task, 15)
            await bus.redis.delete(bus.keys.speak)
            await bus.close()
    if rows:
        print(table(rows, list(rows[0])))
    if wer:
        print()
        wer_rows = [{"voice": v, "WER": w["wer"], "errors": w["errors"], "words": w["words"]} for v, w in wer.items()]
        print(table(wer_rows, list(wer_rows[0])))
    path = write("tts", {"sentences": SENTENCES, "output_rate": OUT_RATE, "runs": args.runs, "results": results,
                         "wer_sentences": str(WER_SENTENCES.relative_to(ROOT)), "wer": wer})  # fmt: skip
    print(f"\nwrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
