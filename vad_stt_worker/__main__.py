"""``python -m vad_stt_worker [serve]`` runs the worker; ``transcribe FILE.wav`` transcribes a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from voicefleet.logs import setup_logging
from voicefleet.service import main_entry, yield_idle_cores

from .settings import SttSettings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vad_stt_worker",
        description="Wake word, voice activity and speech-to-text for the voice fleet. "
        "Settings come from VF_STT_* (and VF_*) environment variables or .env.",
    )
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the worker on the Redis bus (the default)")
    t = sub.add_parser(
        "transcribe",
        help="print the transcript of a WAV file through the worker's VAD and STT path",
        description="Transcript lines on stdout, logs on stderr. Any rate and channel count is accepted.",
    )
    t.add_argument("file", type=Path, help="a WAV file (PCM 8/16/32-bit, any rate, mono or stereo)")
    t.add_argument("--json", action="store_true", help="print utterances, segments and timings as JSON")
    t.add_argument("--wake-word", default=None, help="only transcribe what follows this wake word (hey_jarvis...)")
    t.add_argument("--language", default=None, help="language code, or 'auto' (default: VF_STT_LANGUAGE)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    yield_idle_cores()  # before any model (and its OpenMP runtime) loads
    settings = SttSettings()
    if args.command == "transcribe":
        setup_logging("stt", "WARNING" if not args.json else "ERROR", False)
        from .cli import run

        return run(settings, args.file, args.wake_word, args.json, args.language)
    setup_logging("stt", settings.bus.log_level, settings.bus.log_json)
    from .worker import SttService

    main_entry(SttService(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
