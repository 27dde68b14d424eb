"""Headless turns from the command line: run them, print what happened, save the replies."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from voicefleet.audio import BUS_RATE

from . import wav
from .headless import HeadlessClient, TurnResult
from .protocol import StartOptions
from .settings import ClientSettings

#: How the stages read in the table, in the order a turn passes them.
STAGE_LABELS = {
    "speech_end": "end of speech (server's estimate)",
    "eot": "end of turn decided",
    "transcript": "final transcript",
    "llm_request": "LLM request",
    "llm_first_token": "first LLM token",
    "first_chunk": "first sentence to TTS",
    "tts_start": "TTS started",
    "tts_first_audio": "first TTS audio",
    "gateway_sent": "gateway sent audio",
    "client_first_audio": "first audio received",
}


def out_path(base: Path | None, index: int, count: int) -> Path | None:
    if base is None:
        return None
    if count == 1:
        return base
    return base.with_name(f"{base.stem}-{index}{base.suffix or '.wav'}")


def format_turn(result: TurnResult, saved: Path | None) -> str:
    """A readable summary of one turn."""
    lines = []
    if result.wake_word:
        lines.append(f"wake word:  {result.wake_word}")
    said = "you typed: " if result.source == "text" else "you said:  "
    lines.append(f"{said} {result.transcript or '(no transcript)'}")
    lines.append(f"assistant:  {result.reply.strip() or '(no reply text)'}")
    for tool in result.tools:
        if "ok" in tool:
            lines.append(f"tool:       {tool['name']} -> {'ok' if tool['ok'] else 'failed'}: {tool['text'][:100]}")
    for notice in result.notices:
        lines.append(f"notice:     {notice}")
    for error in result.errors:
        lines.append(f"error:      {error}")
    if result.interrupted:
        lines.append("            (the reply was interrupted)")
    origin = "the end of your speech" if result.source == "voice" else "sending the text"
    if result.voice_to_voice_ms is not None:
        lines.append(f"voice-to-voice: {result.voice_to_voice_ms:.0f} ms "
                     f"(speech ends at {result.speech_end_s:.2f} s in the input)")
    elif result.first_audio_ms is not None:
        lines.append(f"first audio: {result.first_audio_ms:.0f} ms after {origin}")
    if result.stages_ms:
        lines.append(f"  stages, in ms after {origin}:")
        for stage, ms in result.stages_ms.items():
            lines.append(f"    {STAGE_LABELS.get(stage, stage):<36}{ms:>7.0f}")
    if result.audio:
        where = f" -> {saved}" if saved else ""
        lines.append(f"reply audio: {result.audio_s:.2f} s at {result.sample_rate} Hz{where}")
    else:
        lines.append("reply audio: none")
    return "\n".join(lines)


def failure(result: TurnResult, timeout_s: float) -> str | None:
    """A sentence saying why the turn failed, or None."""
    if result.timed_out:
        got = (f"heard {result.transcript!r}" if result.transcript and result.source == "voice"
               else "nothing came back")
        return (f"no complete reply within {timeout_s:g} s ({got}); is the whole fleet running? "
                "see /v1/health on the gateway")
    if result.interrupted:
        return "the reply was interrupted"
    if not result.reply and not result.audio:
        return "the turn ended without a reply" + (f" ({result.errors[-1]})" if result.errors else "")
    return None


async def run_headless(args: argparse.Namespace, token: str, options: StartOptions,
                       settings: ClientSettings, out: TextIO = sys.stdout) -> int:
    inputs: list[tuple[str, np.ndarray | str]] = [
        (kind, wav.read_wav(value, BUS_RATE) if kind == "wav" else str(value)) for kind, value in args.inputs
    ]
    status = 0
    async with HeadlessClient(args.gateway, token, options, frame_ms=settings.frame_ms,
                              open_timeout_s=settings.connect_timeout_s,
                              output_sample_rate=args.out_rate) as client:
        for index, (_kind, value) in enumerate(inputs, start=1):
            if isinstance(value, np.ndarray):
                if wav.speech_end(value, BUS_RATE) is None:
                    print(f"warning: {args.inputs[index - 1][1]} holds no audible speech", file=sys.stderr)
                result = await client.say(value, realtime=not args.fast,
                                          trailing_silence_s=args.trailing_silence, timeout_s=args.timeout)
            else:
                result = await client.ask(value, timeout_s=args.timeout)
            saved = out_path(args.out, index, len(inputs))
            if saved is not None and result.audio:
                wav.write_wav(saved, result.audio, result.sample_rate)
            if args.json:
                record = result.to_json()
                record["saved"] = str(saved) if saved is not None and result.audio else None
                print(json.dumps(record), file=out, flush=True)
            else:
                print(format_turn(result, saved if result.audio else None), file=out, flush=True)
                if index < len(inputs):
                    print(file=out)
            problem = failure(result, args.timeout)
            if problem:
                print(f"error: turn {index}: {problem}", file=sys.stderr)
                status = 1
    return status

