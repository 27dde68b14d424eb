"""Latency of the OpenAI-compatible API and the Wyoming adapter against the WebSocket path, on the same clips.

    .venv/bin/python bench/openai_bench.py --spawn [--runs 3]

Spoken commands (made by the Piper voice, answered by tools, not the LLM)
go through every door to the same STT workers:

* **WebSocket**: streamed in real time by the headless client; latency from
  the acoustic end of the speech to the final transcript (the server's stamp),
  so end-of-turn detection is included, as a live conversation pays it;
* **OpenAI** ``/v1/audio/transcriptions``: the clip uploaded as a WAV file,
  from the request to the whole answer (``json``) and to the first
  ``transcript.text.delta`` (``stream=true``);
* **Wyoming** ``asr``: the clip as audio chunks, from ``audio-stop`` to ``transcript``.

Speech: the same sentences through ``/v1/audio/speech`` (first byte and the
whole file, per format), ``/v1/tts`` (whole WAV) and Wyoming ``tts`` (first chunk).
``--spawn`` starts a private fleet with the Wyoming adapter. Prints a table and
writes bench/results/openai_vs_websocket.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audio_client.headless import HeadlessClient  # noqa: E402
from audio_client.protocol import StartOptions  # noqa: E402
from bench.client_bench import _free_port, spawned_fleet, speak  # noqa: E402
from bench.common import summary, table, write  # noqa: E402
from voicefleet.audio import BUS_RATE  # noqa: E402

#: Commands the intent layer answers with a tool, so a WebSocket turn ends the same way whatever the LLM does.
COMMANDS = [
    "What time is it?",
    "Take a note: buy oat milk.",
    "What time is it in Tokyo?",
    "What notes do I have?",
    "Set a timer for ten minutes.",
    "What timers are running?",
]
SPEECH = [
    "The kitchen lights are on.",
    "Your timer for the pasta is done.",
    # Several sentences: here the first byte leaves long before the last is synthesized.
    "It is sunny and twenty degrees. Tomorrow brings rain in the morning, clearing by noon. "
    "The weekend looks warm, with a light wind from the south and no rain at all.",
]


def wav_bytes(samples: np.ndarray, rate: int = BUS_RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return out.getvalue()


async def websocket_stt(url: str, token: str, clips: list[np.ndarray], runs: int) -> list[float]:
    """End of speech -> final transcript, streamed in real time (the turn is answered too, as in use)."""
    values = []
    async with HeadlessClient(url, token, StartOptions(wake_word="")) as client:
        await client.say(clips[0], trailing_silence_s=1.0)  # warm-up
        for _ in range(runs):
            for clip in clips:
                result = await client.say(clip, trailing_silence_s=1.0, timeout_s=60)
                if "transcript" in result.stages_ms:
                    values.append(result.stages_ms["transcript"])
                print(f"  websocket: {result.stages_ms.get('transcript', float('nan')):6.0f} ms  {result.transcript!r}",
                      flush=True)
    return values


async def openai_stt(http: str, token: str, clips: list[np.ndarray], runs: int) -> dict[str, list[float]]:
    """Upload -> whole answer, and upload -> first streamed delta."""
    whole, first = [], []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=http, headers=headers, timeout=60) as client:
        files = [wav_bytes(c) for c in clips]
        await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", files[0])}, data={"model": "whisper-1"})
        for _ in range(runs):
            for data in files:
                started = time.perf_counter()
                answer = await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", data)},
                                           data={"model": "whisper-1", "language": "en"})
                whole.append((time.perf_counter() - started) * 1000)
                answer.raise_for_status()
                started = time.perf_counter()
                async with client.stream("POST", "/v1/audio/transcriptions", files={"file": ("a.wav", data)},
                                         data={"model": "whisper-1", "language": "en", "stream": "true"}) as s:
                    async for line in s.aiter_lines():
                        if "transcript.text.delta" in line and len(first) < len(whole):
                            first.append((time.perf_counter() - started) * 1000)
                print(f"  openai: {whole[-1]:6.0f} ms whole, {first[-1]:6.0f} ms first delta  "
                      f"{answer.json()['text']!r}", flush=True)
    return {"whole": whole, "first": first}


async def wyoming_stt(uri: str, clips: list[np.ndarray], runs: int) -> list[float]:
    from wyoming.asr import Transcribe
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    values = []
    for n in range(runs * len(clips) + 1):
        clip = clips[n % len(clips)]
        async with AsyncTcpClient.from_uri(uri) as client:  # type: ignore[attr-defined]
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=BUS_RATE, width=2, channels=1).event())
            for i in range(0, clip.size, 1600):
                await client.write_event(AudioChunk(rate=BUS_RATE, width=2, channels=1,
                                                    audio=clip[i:i + 1600].tobytes()).event())
            started = time.perf_counter()
            await client.write_event(AudioStop().event())
            while (event := await client.read_event()) is not None and event.type != "transcript":
                pass
            if n:  # the first one warms up
                values.append((time.perf_counter() - started) * 1000)
    return values


async def speech(http: str, token: str, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=http, headers=headers, timeout=60) as client:
        await client.post("/v1/tts", json={"text": SPEECH[0]})
        for _ in range(runs):
            for n, text in enumerate(SPEECH):
                kind = "long" if n == len(SPEECH) - 1 else "short"
                for fmt in ("pcm", "mp3", "opus", "wav"):
                    started = time.perf_counter()
                    async with client.stream("POST", "/v1/audio/speech",
                                             json={"input": text, "voice": "alloy", "response_format": fmt}) as s:
                        first = None
                        async for _ in s.aiter_bytes():
                            first = first or (time.perf_counter() - started) * 1000
                        out.setdefault(f"speech_{kind}_{fmt}_first_byte", []).append(first or float("nan"))
                    out.setdefault(f"speech_{kind}_{fmt}_whole", []).append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                (await client.post("/v1/tts", json={"text": text})).raise_for_status()
                out.setdefault(f"tts_{kind}_whole_wav", []).append((time.perf_counter() - started) * 1000)
    return out


async def wyoming_tts(uri: str, runs: int) -> list[float]:
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize

    values = []
    for n in range(runs * len(SPEECH) + 1):
        async with AsyncTcpClient.from_uri(uri) as client:  # type: ignore[attr-defined]
            started = time.perf_counter()
            await client.write_event(Synthesize(text=SPEECH[n % len(SPEECH)]).event())
            first = None
            while (event := await client.read_event()) is not None and event.type != "audio-stop":
                if event.type == "audio-chunk" and first is None:
                    first = (time.perf_counter() - started) * 1000
            if n and first is not None:
                values.append(first)
    return values


async def run(ws: str, token: str, asr_uri: str, tts_uri: str, runs: int) -> dict[str, Any]:
    http = ws.replace("ws://", "http://", 1)
    clips = [speak(text) for text in COMMANDS]
    results: dict[str, list[float]] = {}
    print("transcription, same clips:")
    results["stt_websocket_end_of_speech_to_final"] = await websocket_stt(ws, token, clips, runs)
    got = await openai_stt(http, token, clips, runs)
    results["stt_openai_upload_to_answer"] = got["whole"]
    results["stt_openai_stream_upload_to_first_delta"] = got["first"]
    results["stt_wyoming_audio_stop_to_transcript"] = await wyoming_stt(asr_uri, clips, runs)
    print("speech, same sentences:")
    results.update(await speech(http, token, runs))
    results["tts_wyoming_first_chunk"] = await wyoming_tts(tts_uri, runs)
    rows = [{"path": name, **summary(values)} for name, values in results.items()]
    print()
    print("milliseconds (p50/p90 over the runs):")
    print(table(rows, ["path", "n", "p50", "p90", "mean"]))
    return {"runs": runs, "clips": COMMANDS, "sentences": SPEECH, "summary": rows, "values": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawn", action="store_true", help="start a private fleet (with the Wyoming adapter)")
    parser.add_argument("--gateway", default="ws://127.0.0.1:8080")
    parser.add_argument("--token", default=os.environ.get("VF_CLIENT_TOKEN", ""))
    parser.add_argument("--asr", default="tcp://127.0.0.1:10300", help="Wyoming asr URI (without --spawn)")
    parser.add_argument("--tts", default="tcp://127.0.0.1:10200", help="Wyoming tts URI (without --spawn)")
    parser.add_argument("--runs", type=int, default=3, help="passes over the clips")
    args = parser.parse_args()
    if args.spawn:
        asr, tts = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
        with spawned_fleet(1, {"wyoming": ["wyoming_adapter"]}, VF_WYOMING_ASR_URI=asr, VF_WYOMING_TTS_URI=tts,
                           VF_WYOMING_WAKE_URI="") as (url, token):
            data = asyncio.run(run(url, token, asr, tts, args.runs))
    else:
        if not args.token:
            raise SystemExit("give --token (or VF_CLIENT_TOKEN), or use --spawn")
        data = asyncio.run(run(args.gateway, args.token, args.asr, args.tts, args.runs))
    print(f"\nwrote {write('openai_vs_websocket', data)}")


if __name__ == "__main__":
    main()
