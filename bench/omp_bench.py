"""How OpenMP's waiting policy changes llama.cpp's speed, on quiet and on busy cores.

    .venv/bin/python bench/omp_bench.py              # quiet cores, then both cores busy with other processes

llama.cpp (and CTranslate2) run their threads under GNU OpenMP; how long a
waiting thread spins before it sleeps decides how fast a token is on quiet
cores and how badly a busy machine hurts (see
``voicefleet.service.yield_idle_cores``). Each policy runs in a fresh process
(libgomp reads its settings once): SmolLM2, 2 threads, one chat prompt, 48
tokens, 3 replies; the busy case runs two spinning processes beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import summary, table, write

POLICIES = {
    "default (spin 300k)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000 (the fleet's)": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
}


def child() -> None:
    """Print ms per generated token for each of 3 replies (run in a fresh process)."""
    import llama_cpp

    from llm_orchestrator.backends.llamacpp import weight_repack_as
    from voicefleet.models import smollm2_gguf

    with weight_repack_as(False):
        llm = llama_cpp.Llama(str(smollm2_gguf()), n_ctx=2048, n_threads=2, verbose=False)
    messages = [{"role": "system", "content": "You are a helpful voice assistant. Answer in one or two sentences."},
                {"role": "user", "content": "Tell me a fun fact about the moon."}]
    for _ in range(3):
        llm.reset()
        started, first, n = time.perf_counter(), 0.0, 0
        for chunk in llm.create_chat_completion(messages, max_tokens=48, temperature=0.0, stream=True):
            if chunk["choices"][0]["delta"].get("content"):
                n += 1
                first = first or time.perf_counter()
        per_token = (time.perf_counter() - first) / max(1, n - 1)
        print(f"{(first - started) * 1000:.1f} {per_token * 1000:.2f}", flush=True)


def measure(env: dict[str, str], busy: bool) -> list[tuple[float, float]]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 if busy else 0)]
    try:
        clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        out = subprocess.run([sys.executable, __file__, "--child"], env={**clean, **env}, check=True,
                             capture_output=True, text=True, timeout=600).stdout
    finally:
        for hog in hogs:
            hog.kill()
    return [(float(a), float(b)) for a, b in (line.split() for line in out.strip().splitlines())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quiet-only", action="store_true", help="skip the busy-cores runs")
    args = parser.parse_args()
    if args.child:
        child()
        return
    rows: list[dict[str, Any]] = []
    for busy in ([False] if args.quiet_only else [False, True]):
        for name, env in POLICIES.items():
            runs = measure(env, busy)
            tokens = summary([b for _, b in runs])
            rows.append({"cores": "busy" if busy else "quiet", "policy": name,
                         "first_token_ms": round(summary([a for a, _ in runs])["p50"], 1),
                         "ms_per_token_p50": round(tokens["p50"], 2),
                         "ms_per_token_max": round(max(b for _, b in runs), 2)})
            print(f"  {rows[-1]}", flush=True)
    print(table(rows, ["cores", "policy", "first_token_ms", "ms_per_token_p50", "ms_per_token_max"]))
    print(f"wrote {write('omp', {'rows': rows})}")


if __name__ == "__main__":
    main()
