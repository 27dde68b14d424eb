"""``python -m wyoming_adapter``: Wyoming speech-to-text, text-to-speech and wake word servers for the fleet."""

from __future__ import annotations

import argparse
import sys

from voicefleet.logs import setup_logging
from voicefleet.service import main_entry

from .settings import WyomingSettings


def parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m wyoming_adapter",
        description="Wyoming servers (Home Assistant's protocol) in front of the voice fleet: speech to text "
        "(asr, tcp://127.0.0.1:10300), text to speech (tts, :10200) and wake word detection (wake, :10400), "
        "answered by the fleet's workers over Redis. Settings come from VF_WYOMING_* (and VF_*) environment "
        "variables or .env; an empty URI turns that server off.",
    )


def main(argv: list[str] | None = None) -> int:
    parser().parse_args(argv)
    settings = WyomingSettings()
    setup_logging("wyoming", settings.bus.log_level, settings.bus.log_json)
    from .service import WyomingService

    main_entry(WyomingService(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
