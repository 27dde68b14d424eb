"""llama.cpp's OpenAI-compatible server (``llama_cpp.server``), loaded the way the orchestrator loads its model.

    python -m llm_orchestrator.openai_server --model PATH.gguf --port 8000 [llama_cpp.server options]

Point ``VF_LLM_BACKENDS=openai,llamacpp`` and ``VF_LLM_OPENAI_BASE_URL`` at it.
``llama_cpp.server`` has no option for llama.cpp's weight repacking, which
llama-cpp-python 0.3.36 crashes with (SIGSEGV) on CPUs with AMX; this wrapper
applies ``VF_LLM_WEIGHT_REPACK`` (off by default) and lets OpenMP threads sleep
between steps, then hands every argument to the server's own command line.
"""

from __future__ import annotations

import runpy
import sys

from voicefleet.service import yield_idle_cores

from .backends.llamacpp import weight_repack_as
from .settings import LlmSettings


def main(argv: list[str] | None = None) -> None:
    yield_idle_cores()  # before llama.cpp (and its OpenMP runtime) loads
    args = sys.argv[1:] if argv is None else argv
    with weight_repack_as(LlmSettings().weight_repack):
        sys.argv = ["python -m llm_orchestrator.openai_server", *args]
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
