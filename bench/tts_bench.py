"""Benchmark of the TTS worker: time to first audio and real-time factor.

A TTS worker runs in this process against the real Redis (a key prefix of its
own) and speaks typical reply sentences, one SpeakRequest at a time, as the
first sentence of a turn. A client reads the session's out stream and
measures, per sentence:

* first audio: SpeakRequest enqueued -> first AudioChunk read by the client;
* real-time factor (RTF): enqueued -> last chunk read, over the audio length;
* engine RTF: Piper's synthesis time alone over the audio length;
* where the first audio's wait went (p50): ``queue`` (enqueued -> the worker
  starts), ``synth`` (start -> first piece ready), ``delivery`` (-> client).

"short" sentences have at most 60 characters, "long" ones more (those are cut
at their first clause unless ``no-first-cut``).

Each configuration (ONNX threads, first-piece cutting) runs alone and while
SmolLM2 generates continuously in a background thread (llama.cpp, the LLM
the fleet ships), as it does on a one-machine install while a reply streams.

    python bench/tts_bench.py [--runs 3] [--threads 1,2] [--llm-threads 2] [--no-llm]

Prints a table and writes bench/results/tts.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import summary, table, write  # noqa: E402
from tts_worker.settings import TtsSettings  # noqa: E402
from tts_worker.worker import TtsService, load_voices  # noqa: E402
from voicefleet.bus import Bus  # noqa: E402
from voicefleet.messages import AudioChunk, SpeakRequest, new_id  # noqa: E402
from voicefleet.models import smollm2_gguf  # noqa: E402
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


async def speak_once(bus: Bus, text: str) -> dict[str, float]:
    session = f"bench-{new_id()[:8]}"
    stream = bus.keys.out(session)
    request = SpeakRequest(session_id=session, turn_id=new_id(), seq=0, text=text, sample_rate=OUT_RATE, final=True)
    started, enqueued_at = time.perf_counter(), time.time()
    await bus.enqueue(bus.keys.speak, request)
    first = None
    stages: dict[str, float] = {}
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
            if msg.last:
                ended = time.perf_counter()
                await bus.redis.delete(stream)
                audio_s = samples / OUT_RATE
                return {
                    "first_ms": (first - started) * 1000,
                    "rtf": (ended - started) / audio_s,
                    "audio_s": audio_s,
                    **stages,
                }


def engine_rtf(service: TtsService, text: str) -> float:
    assert service.catalog is not None
    engine = service.catalog.resolve(None)
    assert engine is not None
    started = time.perf_counter()
    samples = sum(len(part) for part in engine.synthesize(text))
    return (time.perf_counter() - started) / (samples / engine.sample_rate)


async def run_config(
    bus_settings: BusSettings, settings: dict[str, Any], runs: int, catalogs: dict[int, Any]
) -> dict[str, Any]:
    tts = TtsSettings(bus=bus_settings, concurrency=1, **settings)
    if tts.threads not in catalogs:
        catalogs[tts.threads] = await asyncio.to_thread(load_voices, tts)
    service = TtsService(tts, catalog=catalogs[tts.threads])
    task = asyncio.create_task(service.run())
    bus = Bus(bus_settings)
    try:
        while not service.ready:  # noqa: ASYNC110 - Service exposes a flag, not an event
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        await speak_once(bus, "Warming up.")
        first, rtf, engine = [], [], []
        first_long, first_short = [], []
        stages: dict[str, list[float]] = {"queue_ms": [], "synth_ms": [], "delivery_ms": []}
        for _ in range(runs):
            for text in SENTENCES:
                result = await speak_once(bus, text)
                first.append(result["first_ms"])
                rtf.append(result["rtf"])
                (first_long if len(text) > 60 else first_short).append(result["first_ms"])
                for stage, values in stages.items():
                    values.append(result[stage])
            engine.append(await asyncio.to_thread(engine_rtf, service, SENTENCES[-2]))
        return {"first_audio_ms": summary(first), "first_audio_short_ms": summary(first_short),
                "first_audio_long_ms": summary(first_long), "rtf": summary(rtf), "engine_rtf": summary(engine),
                **{stage: summary(values) for stage, values in stages.items()}}  # fmt: skip
    finally:
        service.stop()
        await asyncio.wait_for(task, 15)
        await bus.redis.delete(bus.keys.speak)
        await bus.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="passes over the sentences per configuration")
    parser.add_argument("--threads", default="1,2", help="ONNX Runtime thread counts to compare")
    parser.add_argument("--llm-threads", type=int, default=2, help="llama.cpp threads of the background LLM")
    parser.add_argument("--no-llm", action="store_true", help="skip the runs with the LLM generating")
    args = parser.parse_args()

    bus_settings = BusSettings(key_prefix=f"bench-tts-{new_id()[:6]}")
    configs: list[dict[str, Any]] = [{"threads": int(t)} for t in args.threads.split(",")]
    configs.append({"threads": int(args.threads.split(",")[0]), "first_piece_chars": 0})
    catalogs: dict[int, Any] = {}
    rows: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for load in ["alone"] if args.no_llm else ["alone", "llm"]:
        with LlmLoad(args.llm_threads) if load == "llm" else contextlib.nullcontext() as llm:
            for config in configs:
                tokens_before, started = (llm.tokens if llm else 0), time.perf_counter()
                measured = await run_config(bus_settings, config, args.runs, catalogs)
                tok_s = ((llm.tokens - tokens_before) / (time.perf_counter() - started)) if llm else 0.0
                name = f"threads={config['threads']}" + (" no-first-cut" if "first_piece_chars" in config else "")
                # Other work on the machine skews every figure: keep the load beside them.
                load_avg = os.getloadavg()[0]
                results.append(
                    {"config": config, "load": load, **measured, "llm_tokens_per_s": tok_s, "loadavg_1m": load_avg}
                )
                rows.append({
                    "config": name, "load": load,
                    "first p50 ms": measured["first_audio_ms"]["p50"],
                    "first p90 ms": measured["first_audio_ms"]["p90"],
                    "short p50": measured["first_audio_short_ms"]["p50"],
                    "long p50": measured["first_audio_long_ms"]["p50"],
                    "queue": measured["queue_ms"]["p50"], "synth": measured["synth_ms"]["p50"],
                    "delivery": measured["delivery_ms"]["p50"],
                    "RTF p50": measured["rtf"]["p50"], "engine RTF": measured["engine_rtf"]["p50"],
                    "LLM tok/s": tok_s, "loadavg": load_avg,
                })  # fmt: skip
                print(f"done: {name} / {load}", file=sys.stderr)
    print(table(rows, list(rows[0])))
    path = write("tts", {"sentences": SENTENCES, "output_rate": OUT_RATE, "runs": args.runs, "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
