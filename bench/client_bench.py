"""Voice-to-voice latency as a user feels it, measured by the headless client.

    .venv/bin/python bench/client_bench.py --spawn [--turns 12] [--sessions 1]
    .venv/bin/python bench/client_bench.py --gateway ws://127.0.0.1:8080 --token T [--sessions 4]
    .venv/bin/python bench/client_bench.py --spawn --sessions 4 --stagger 3   # random start offsets

With ``--sessions N`` the sessions talk simultaneously (every session starts
its turns at once, the worst case); ``--stagger S`` starts each one after a
random offset in [0, S) s and pauses a random 0-S/2 s between its turns, as
people talking to one server would (seeded, so runs compare).

Spoken commands (made by the Piper voice) are streamed to the gateway in real
time, 40 ms frames, by ``audio_client.headless.HeadlessClient`` — one client
per session, all sessions at once. Voice-to-voice is the time from the
acoustic end of the speech in the recording (found by energy, taken when that
frame was sent) to the first byte of reply audio received; the per-stage
breakdown comes from the server's stamps in ``audio_start``. ``--spawn``
starts its own fleet (gateway, STT, LLM, TTS, tools) as processes under a
private key prefix; otherwise it talks to a running one (``./run.sh``).

Prints a table and writes bench/results/client_v2v.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audio_client.headless import HeadlessClient, TurnResult  # noqa: E402
from audio_client.protocol import StartOptions  # noqa: E402
from bench.common import RESULTS, summary, table, write  # noqa: E402
from voicefleet.audio import BUS_RATE  # noqa: E402

COMMANDS = [
    "Hello, how are you today?",
    "Tell me a fun fact about the moon.",
    "What is the capital of France?",
    "Give me a short tip for sleeping better.",
    "How many legs does a spider have?",
    "Say something nice about Mondays.",
]
STAGES = [
    "speech_end",
    "eot",
    "transcript",
    "llm_first_token",
    "first_chunk",
    "tts_first_audio",
    "gateway_sent",
    "client_first_audio",
]


@functools.lru_cache(maxsize=1)
def _voice() -> Any:
    from piper import PiperVoice

    from voicefleet.models import piper_voice

    return PiperVoice.load(str(piper_voice()))


def speak(text: str) -> np.ndarray:
    """``text`` spoken by the packaged Piper voice, int16 at 16 kHz, after 0.3 s of silence."""
    import soxr
    from piper import SynthesisConfig

    voice = _voice()
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    audio = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, syn_config=config)])
    audio = soxr.resample(audio, voice.config.sample_rate, BUS_RATE).astype(np.int16)
    return np.concatenate([np.zeros(4800, np.int16), audio])


@contextlib.contextmanager
def spawned_fleet(
    llm_procs: int = 1, extra: dict[str, list[str]] | None = None, **extra_env: str
) -> Iterator[tuple[str, str]]:
    """gateway, stt, llm (``llm_procs`` of them), tts, tools (+ ``extra`` modules) as processes under a private
    prefix: (ws URL, token)."""
    import redis

    from gateway import auth
    from gateway.settings import GatewaySettings

    prefix = f"vfbench-{os.urandom(3).hex()}"
    port = _free_port()
    secret = os.urandom(24).hex()
    env = dict(
        os.environ,
        VF_KEY_PREFIX=prefix,
        VF_GATEWAY_JWT_SECRET=secret,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
        VF_GATEWAY_REQUIRED_SERVICES="stt,llm,tts,tools",
        **extra_env,
    )
    logs = RESULTS / "client_bench_logs"
    logs.mkdir(parents=True, exist_ok=True)
    modules = {
        "gateway": ["gateway", "serve", "--port", str(port)],
        "stt": ["vad_stt_worker"],
        **{f"llm{i + 1}" if i else "llm": ["llm_orchestrator"] for i in range(llm_procs)},
        "tts": ["tts_worker"],
        "tools": ["tools_worker"],
        **(extra or {}),
    }
    procs = []
    try:
        for name, args in modules.items():
            with open(logs / f"{name}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                )
        _wait_ready(f"http://127.0.0.1:{port}", procs, logs)
        settings = GatewaySettings(jwt_secret=secret)
        yield f"ws://127.0.0.1:{port}", auth.mint("bench", 3600, settings)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        client = redis.Redis.from_url(os.environ.get("VF_REDIS_URL", "redis://127.0.0.1:6379/0"))
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(http: str, procs: list[subprocess.Popen[bytes]], logs: Path, timeout: float = 300) -> None:
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"a fleet process stopped while starting; see {logs}/")
        with contextlib.suppress(OSError, ValueError):
            if json.load(urllib.request.urlopen(f"{http}/v1/health", timeout=2)).get("ready"):
                return
        time.sleep(0.5)
    raise SystemExit(f"the fleet was not ready in {timeout:.0f} s; see {logs}/")


async def one_session(
    url: str, token: str, index: int, clips: list[np.ndarray], turns: int, warmup: int, timeout_s: float,
    stagger_s: float = 0.0,
) -> list[TurnResult]:
    results = []
    rng = random.Random(index)
    if stagger_s:
        await asyncio.sleep(rng.uniform(0, stagger_s))
    async with HeadlessClient(url, token, StartOptions(wake_word="")) as client:
        for turn in range(warmup + turns):
            if stagger_s and turn:
                await asyncio.sleep(rng.uniform(0, stagger_s / 2))
            clip = clips[(index + turn) % len(clips)]
            result = await client.say(clip, trailing_silence_s=1.0, timeout_s=timeout_s)
            if turn >= warmup:
                results.append(result)
            print(
                f"  session {index} turn {turn + 1}/{warmup + turns}: "
                f"{_ms(result.voice_to_voice_ms)} ms  {result.transcript!r} -> {result.reply[:50]!r}"
                + ("  (warm-up)" if turn < warmup else ""),
                flush=True,
            )
    return results


def _ms(value: float | None) -> str:
    return "   -" if value is None else f"{value:5.0f}"


async def run(url: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    clips = [speak(text) for text in COMMANDS]
    started = time.perf_counter()
    per_session = await asyncio.gather(
        *(
            one_session(url, token, i, clips, args.turns, args.warmup, args.timeout, args.stagger)
            for i in range(args.sessions)
        )
    )
    wall_s = time.perf_counter() - started
    results = [r for session in per_session for r in session]
    good = [r for r in results if r.ok and r.voice_to_voice_ms is not None]
    rows = [{"metric": "voice_to_voice_ms", **summary([r.voice_to_voice_ms for r in good])}]  # type: ignore[misc]
    for stage in STAGES:
        values = [r.stages_ms[stage] for r in good if stage in r.stages_ms]
        if values:
            rows.append({"metric": f"stage {stage}", **summary(values)})
    print()
    print(
        f"{len(good)}/{len(results)} turns answered, {args.sessions} session(s) "
        f"{f'staggered over {args.stagger:g} s' if args.stagger else 'at once'}, "
        f"{wall_s:.0f} s; milliseconds after the end of speech:"
    )
    print(table(rows, ["metric", "n", "p50", "p90", "p99", "mean"]))
    return {
        "sessions": args.sessions,
        "stagger_s": args.stagger,
        "llm_procs": args.llm_procs,
        "loadavg_after": os.getloadavg(),
        "label": args.label,
        "settings": {k: v for k, v in sorted(os.environ.items()) if k.startswith("VF_") and "SECRET" not in k},
        "turns_per_session": args.turns,
        "warmup": args.warmup,
        "answered": len(good),
        "total": len(results),
        "summary": rows,
        "turns": [r.to_json() for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawn", action="store_true", help="start a private fleet as processes")
    parser.add_argument("--gateway", default="ws://127.0.0.1:8080")
    parser.add_argument("--token", default=os.environ.get("VF_CLIENT_TOKEN", ""))
    parser.add_argument("--turns", type=int, default=12, help="measured turns per session")
    parser.add_argument("--warmup", type=int, default=1, help="turns per session not counted")
    parser.add_argument("--sessions", type=int, default=1, help="sessions talking at once")
    parser.add_argument("--stagger", type=float, default=0.0,
                        help="random start offset up to this many seconds per session (0: all at once)")
    parser.add_argument("--llm-procs", type=int, default=1,
                        help="with --spawn: orchestrator processes (each its own model; VF_LLM_THREADS sets threads)")
    parser.add_argument("--label", default="", help="added to the result file's name (before/after runs)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if args.spawn:
        with spawned_fleet(args.llm_procs) as (url, token):
            data = asyncio.run(run(url, token, args))
    else:
        if not args.token:
            raise SystemExit("give --token (or VF_CLIENT_TOKEN), or use --spawn")
        data = asyncio.run(run(args.gateway, args.token, args))
    name = "client_v2v" if args.sessions == 1 else f"client_v2v_{args.sessions}sessions"
    if args.sessions > 1 and args.stagger:
        name += "_staggered"
    if args.label:
        name += f"_{args.label}"
    print(f"\nwrote {write(name, data)}")


if __name__ == "__main__":
    main()
