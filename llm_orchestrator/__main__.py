"""``python -m llm_orchestrator``: run the LLM orchestrator (wiring only)."""

from __future__ import annotations

import argparse

from voicefleet.logs import setup_logging
from voicefleet.service import main_entry, yield_idle_cores

from .settings import LlmSettings
from .worker import LlmService


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vf-llm",
        description=(
            "Answer final transcripts and typed text with a streamed, spoken reply. "
            "Configured by VF_LLM_* environment variables (and .env); see .env.example."
        ),
    )
    parser.add_argument("--backends", help="override VF_LLM_BACKENDS, e.g. 'openai,llamacpp'")
    parser.add_argument("--concurrency", type=int, help="override VF_LLM_CONCURRENCY")
    args = parser.parse_args(argv)
    yield_idle_cores()  # before any model (and its OpenMP runtime) loads
    overrides = {k: v for k, v in (("backends", args.backends), ("concurrency", args.concurrency)) if v}
    settings = LlmSettings(**overrides)
    setup_logging("llm", settings.bus.log_level, settings.bus.log_json)
    main_entry(LlmService(settings))


if __name__ == "__main__":
    main()
