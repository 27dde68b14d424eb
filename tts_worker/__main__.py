"""``python -m tts_worker``: run one TTS worker process (wiring only)."""

from __future__ import annotations

import argparse

from voicefleet.logs import setup_logging
from voicefleet.service import main_entry

from .settings import TtsSettings
from .worker import TtsService


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vf-tts",
        description="TTS worker: synthesizes speech requests from the bus with hibari or Piper and streams "
        "PCM chunks back. Settings come from VF_TTS_* (and VF_* for Redis) environment variables "
        "or .env; see .env.example.",
    )
    parser.add_argument("--voices-dir", help="folder of extra Piper voices (overrides VF_TTS_VOICES_DIR)")
    parser.add_argument("--concurrency", type=int, help="sentences synthesized at once (VF_TTS_CONCURRENCY)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("voices_dir", args.voices_dir), ("concurrency", args.concurrency)) if v is not None}
    settings = TtsSettings(**overrides)
    setup_logging("tts", settings.bus.log_level, settings.bus.log_json)
    main_entry(TtsService(settings))


if __name__ == "__main__":
    main()
