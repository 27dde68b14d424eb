"""Benchmark of the LLM orchestrator's backends and of a whole turn over the bus.

For each backend (llama.cpp in this process; an OpenAI-compatible server,
llama-cpp-python's own, started here on 127.0.0.1) it streams the same short
spoken-style questions with the shipped persona as system prompt and measures:

* time to first token (TTFT), from the request to the first text piece;
* time to the first speakable chunk, as the orchestrator's chunker cuts it,
  and, from the same tokens, as it cut it with clause boundaries only
  (``first_max_words=0``, before phrase boundaries): a paired comparison;
* generation speed in tokens per second (after the first token);
* for llama.cpp, how long a cancel takes to free the model (barge-in).

Then it runs the orchestrator service against the real Redis and measures a
turn end to end on the bus: TurnRequest enqueued -> first SpeakRequest.

    python bench/llm_bench.py [--runs 8] [--threads 2] [--no-server] [--no-bus] [--questions chat] [--show-chunks]

Prints a table and writes bench/results/llm.json.

``--sessions N`` measures instead how the in-process model is shared: N
sessions each ask a question at the same moment (``--stagger S``: at random
offsets within S seconds), for ``--rounds`` rounds, each session's replies
kept in its history as the orchestrator does (at most ``--max-sentences``
sentences, as its reply gate stops them). For every turn: time to first token
and to the first speakable chunk, from the moment the turn was asked.
``--compare REF`` runs the same rounds with the backend module of git ref REF
(e.g. ``main``) too, alternating A, B, A, B; ``--rss`` measures each one's
resident memory in a fresh process.

    python bench/llm_bench.py --sessions 4 --rounds 6 [--stagger 2] [--compare main] [--rss]

Writes bench/results/llm_sessions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_orchestrator.backends import Backend, LlamaCppBackend, LlamaCppLLM, OpenAICompatBackend  # noqa: E402
from llm_orchestrator.chunker import SpeechChunker  # noqa: E402
from llm_orchestrator.prompt import PromptBuilder  # noqa: E402
from llm_orchestrator.settings import DEFAULT_PERSONA, LlmSettings  # noqa: E402
from voicefleet.models import smollm2_gguf  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "Tell me about the sun.",
    "How do I make a cup of tea?",
    "Why is the sky blue?",
    "Give me a tip for sleeping better.",
    "What is a good name for a cat?",
    "How far away is the moon?",
    "Tell me a fun fact about octopuses.",
]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def question_set(name: str) -> list[str]:
    """``bench``: QUESTIONS; ``chat``: the typed sentences of chat_questions.json; ``client``: client_bench's."""
    if name == "chat":
        data = json.loads((ROOT / "bench" / "chat_questions.json").read_text(encoding="utf-8"))
        return [turn["text"] for session in data["sessions"] for turn in session["turns"]]
    if name == "client":
        from bench.client_bench import COMMANDS

        return list(COMMANDS)
    return QUESTIONS


async def one_reply(
    backend: Backend, prompt: PromptBuilder, question: str, max_tokens: int, seed: int = 1
) -> dict[str, Any]:
    messages = prompt.messages(prompt.system(), [], question)
    chunkers = {"": SpeechChunker(), "_clause_only": SpeechChunker(first_max_words=0)}
    started = time.perf_counter()
    first_token = None
    first_chunk: dict[str, float] = {}
    first_text: dict[str, str] = {}
    tokens = 0
    async for piece in backend.stream(messages, max_tokens=max_tokens, seed=seed):
        if not piece.text:
            continue
        now = time.perf_counter()
        tokens += 1
        first_token = first_token or now
        for key, chunker in chunkers.items():
            cut = chunker.feed(piece.text)
            if cut and key not in first_chunk:
                first_chunk[key], first_text[key] = now, cut[0]
    ended = time.perf_counter()
    for key, chunker in chunkers.items():
        cut = chunker.flush()
        if cut and key not in first_chunk:
            first_chunk[key], first_text[key] = ended, cut[0]
    first_token = first_token or ended
    return {
        "question": question,
        "first_chunk_text": first_text.get("", ""),
        "first_chunk_text_clause_only": first_text.get("_clause_only", ""),
        "ttft_ms": (first_token - started) * 1000,
        "first_chunk_ms": (first_chunk.get("", ended) - started) * 1000,
        "first_chunk_clause_only_ms": (first_chunk.get("_clause_only", ended) - started) * 1000,
        "tokens": tokens,
        "tokens_per_s": (tokens - 1) / (ended - first_token) if tokens > 1 and ended > first_token else 0.0,
        "total_ms": (ended - started) * 1000,
    }


async def measure(
    backend: Backend, prompt: PromptBuilder, runs: int, max_tokens: int, questions: list[str] = QUESTIONS
) -> dict[str, Any]:
    await backend.start(prompt.warm_messages())  # as the orchestrator starts: the system prompt cached (everywhere)
    await one_reply(backend, prompt, "Hello!", 4)  # warm: the system prompt is now cached
    # Each pass over the questions with another seed: other replies.
    samples = [
        await one_reply(backend, prompt, questions[i % len(questions)], max_tokens, seed=1 + i // len(questions))
        for i in range(runs)
    ]
    summary: dict[str, Any] = {"runs": runs}
    keys = ("ttft_ms", "first_chunk_ms", "first_chunk_clause_only_ms", "tokens_per_s", "total_ms", "tokens")
    for key in keys:
        values = [s[key] for s in samples]
        summary[key] = {"p50": pct(values, 0.5), "p90": pct(values, 0.9), "mean": statistics.fmean(values)}
    summary["first_chunks"] = [
        {k: s[k] for k in ("question", "first_chunk_text", "first_chunk_text_clause_only")}
        | {k: s[k] for k in ("ttft_ms", "first_chunk_ms", "first_chunk_clause_only_ms")}
        | {"saved_ms": s["first_chunk_clause_only_ms"] - s["first_chunk_ms"]}
        for s in samples
    ]
    return summary


async def cancel_latency(backend: LlamaCppBackend, prompt: PromptBuilder, runs: int) -> dict[str, float]:
    """From closing a running stream to the model thread taking the next job."""
    llm: LlamaCppLLM = backend._llm
    delays = []
    for i in range(runs):
        messages = prompt.messages(prompt.system(), [], f"Write a long story about dragon number {i}.")
        stream = backend.stream(messages, max_tokens=400, seed=i)
        count = 0
        async for _ in stream:
            count += 1
            if count == 10:
                break
        started = time.perf_counter()
        await stream.aclose()  # type: ignore[attr-defined]
        await llm.run_on_model_thread(lambda: None)  # runs once the generation let go of the thread
        delays.append((time.perf_counter() - started) * 1000)
    return {"p50": pct(delays, 0.5), "p90": pct(delays, 0.9), "max": max(delays)}


class LocalServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 with the packaged GGUF."""

    def __init__(self, model: Path, threads: int) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tempfile.NamedTemporaryFile(prefix="llm-bench-server-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "llm_orchestrator.openai_server", "--model", str(model), "--host", "127.0.0.1",
                "--port", str(self.port), "--n_threads", str(threads), "--n_ctx", "4096",
                "--model_alias", "local", "--verbose", "False",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def wait(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"llama_cpp.server did not start; see {self.log.name}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()
        os.unlink(self.log.name)


async def bus_turns(backend: LlamaCppBackend, runs: int, max_tokens: int) -> dict[str, Any]:
    """A whole turn through the orchestrator service on the real Redis."""
    from llm_orchestrator.worker import LlmService
    from voicefleet.bus import Bus
    from voicefleet.messages import SpeakRequest, TurnRequest, new_id, now
    from voicefleet.settings import BusSettings

    bus_settings = BusSettings(key_prefix=f"bench-llm-{new_id()[:6]}", health_ttl_s=2)
    bus = Bus(bus_settings)
    service = LlmService(LlmSettings(bus=bus_settings, max_tokens=max_tokens), backends=[backend])
    runner = asyncio.create_task(service.run())
    first_chunk, first_token, request = [], [], []
    try:
        async with asyncio.timeout(60):
            while not service.ready:  # noqa: ASYNC110 (the service exposes a flag, not an event)
                await asyncio.sleep(0.02)
        for i in range(runs):
            turn = TurnRequest(session_id=f"bench{i}", turn_id=new_id(), text=QUESTIONS[i % len(QUESTIONS)])
            turn.ts["transcript"] = now()
            last = "$"
            await bus.enqueue(bus.keys.turns, turn)
            async with asyncio.timeout(60):
                while True:
                    entries = await bus.read(bus.keys.speak, last, block_ms=500)
                    found = [e.message for e in entries if isinstance(e.message, SpeakRequest)]
                    found = [m for m in found if m.turn_id == turn.turn_id and m.seq == 0]
                    if entries:
                        last = entries[-1].id
                    if found:
                        ts = found[0].ts
                        first_chunk.append((ts["first_chunk"] - ts["transcript"]) * 1000)
                        first_token.append((ts["llm_first_token"] - ts["transcript"]) * 1000)
                        request.append((ts["llm_request"] - ts["transcript"]) * 1000)
                        break
                # Let the reply finish: the next turn must not wait for the model.
                done = "0"
                while True:
                    entries = await bus.read(bus.keys.out(turn.session_id), done, block_ms=500)
                    if any(e.message is not None and e.message.type == "reply_done" for e in entries):
                        break
                    if entries:
                        done = entries[-1].id
    finally:
        service.stop()
        await asyncio.wait_for(runner, 15)
        keys = [k async for k in bus.redis.scan_iter(match=f"{bus_settings.key_prefix}:*")]
        if keys:
            await bus.redis.delete(*keys)
        await bus.close()
    return {
        "runs": runs,
        "turn_to_llm_request_ms": {"p50": pct(request, 0.5), "p90": pct(request, 0.9)},
        "turn_to_first_token_ms": {"p50": pct(first_token, 0.5), "p90": pct(first_token, 0.9)},
        "turn_to_first_chunk_ms": {"p50": pct(first_chunk, 0.5), "p90": pct(first_chunk, 0.9)},
    }


SESSION_QUESTIONS = [
    ["Tell me about the sun.", "How hot is it?", "How old is it?", "Will it ever go out?"],
    ["How do I make a cup of tea?", "Should I add milk?", "What about sugar?", "Which tea is the strongest?"],
    ["Why is the sky blue?", "And why are sunsets red?", "What colour is the sky on Mars?", "Why is that?"],
    ["Give me a tip for sleeping better.", "What about naps?", "How long should I sleep?", "Is coffee bad?"],
    ["Tell me a fun fact about octopuses.", "How many hearts do they have?", "Are they smart?", "How old do they get?"],
    ["What is a good name for a cat?", "And for a dog?", "What do cats eat?", "Do they like water?"],
]


def load_backend_module(ref: str) -> Any:
    """The llama.cpp backend module as it is at git ref ``ref``, importable next to today's."""
    import importlib.util

    source = subprocess.run(
        ["git", "show", f"{ref}:llm_orchestrator/backends/llamacpp.py"], cwd=ROOT, check=True, capture_output=True,
        text=True,
    ).stdout
    name = "llm_orchestrator.backends._llamacpp_" + "".join(c if c.isalnum() else "_" for c in ref)
    path = Path(tempfile.mkdtemp()) / "llamacpp.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=None)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "llm_orchestrator.backends"
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sessions_backend(impl: str, model: Path, threads: int, max_tokens: int) -> Any:
    """``impl``: "new" (this checkout, settings' defaults) or a git ref."""
    if impl == "new":
        settings = LlmSettings(max_tokens=max_tokens, threads=threads, model_path=model)
        from llm_orchestrator.backends import llamacpp_backend

        return llamacpp_backend(settings)
    module = load_backend_module(impl)
    settings = LlmSettings()
    llm = module.LlamaCppLLM(
        model_path=str(model), n_threads=threads, n_ctx=settings.n_ctx, max_tokens=max_tokens,
        temperature=settings.temperature, top_p=settings.top_p, repeat_penalty=settings.repeat_penalty,
    )
    return module.LlamaCppBackend(llm)


class SessionsRun:
    """One backend answering N sessions' rounds of turns; each session's history grows as in the orchestrator."""

    def __init__(self, name: str, backend: Any, prompt: PromptBuilder, sessions: int, max_tokens: int,
                 max_sentences: int) -> None:
        import inspect

        self.name = name
        self.backend = backend
        self.prompt = prompt
        self.sessions = sessions
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences
        self.histories: list[list[Any]] = [[] for _ in range(sessions)]
        self.signals = "spoken" in inspect.signature(backend.stream).parameters
        self.turns: list[dict[str, Any]] = []

    async def turn(self, session: int, round_no: int, delay: float) -> None:
        from llm_orchestrator.guard import ReplyGate
        from llm_orchestrator.history import HistoryEntry

        await asyncio.sleep(delay)
        questions = SESSION_QUESTIONS[session % len(SESSION_QUESTIONS)]
        question = questions[round_no % len(questions)]
        history = self.histories[session][-16:]  # 8 exchanges, as VF_LLM_HISTORY_TURNS
        messages = self.prompt.messages(self.prompt.system(), history, question)
        chunker, gate = SpeechChunker(), ReplyGate(None, self.max_sentences)
        spoken = threading.Event()
        options: dict[str, Any] = {"max_tokens": self.max_tokens, "seed": 1000 * session + round_no}
        if self.signals:
            options["spoken"] = spoken
        started = time.perf_counter()
        first_token = first_chunk = None
        text = ""
        tokens = 0
        stream = self.backend.stream(messages, **options)
        try:
            async for piece in stream:
                if not piece.text:
                    continue
                tokens += 1
                text += piece.text
                first_token = first_token or time.perf_counter()
                if gate.offer(chunker.feed(piece.text)) and first_chunk is None:
                    first_chunk = time.perf_counter()
                    spoken.set()
                if gate.done:
                    break
        finally:
            await stream.aclose()
        ended = time.perf_counter()
        if first_chunk is None and gate.offer(chunker.flush(), final=True):
            first_chunk = ended
        said = " ".join(gate.said) or text.strip()
        self.histories[session] += [HistoryEntry("user", question), HistoryEntry("assistant", said)]
        self.turns.append({
            "session": session, "round": round_no, "delay_s": delay, "tokens": tokens,
            "ttft_ms": ((first_token or ended) - started) * 1000,
            "first_chunk_ms": ((first_chunk or ended) - started) * 1000,
            "total_ms": (ended - started) * 1000,
        })

    async def round(self, round_no: int, delays: list[float]) -> None:
        await asyncio.gather(*(self.turn(i, round_no, delays[i]) for i in range(self.sessions)))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"turns": len(self.turns)}
        for key in ("ttft_ms", "first_chunk_ms", "total_ms", "tokens"):
            values = [t[key] for t in self.turns]
            out[key] = {"p50": pct(values, 0.5), "p90": pct(values, 0.9), "max": max(values)}
        return out


def rss_child(impl: str, model: Path, threads: int, sessions: int, max_tokens: int) -> None:
    """In a fresh process: load ``impl``, warm it, answer one round; print this process's memory as JSON."""

    async def run() -> None:
        prompt = PromptBuilder(DEFAULT_PERSONA.read_text(encoding="utf-8"))
        backend = sessions_backend(impl, model, threads, max_tokens)
        await backend.start(prompt.warm_messages())
        loaded = _memory()
        await SessionsRun(impl, backend, prompt, sessions, max_tokens, 2).round(0, [0.0] * sessions)
        print(json.dumps({"loaded": loaded, "after_round": _memory()}))
        await backend.close()

    asyncio.run(run())


def _memory() -> dict[str, float]:
    """VmRSS counts a file mapped N times N times (the contexts' shared weights); Pss counts it once."""
    fields = {}
    for path, names in (("/proc/self/status", ("VmRSS", "VmHWM", "RssAnon", "RssFile")),
                        ("/proc/self/smaps_rollup", ("Pss", "Pss_Anon", "Pss_File"))):
        with open(path, encoding="ascii") as lines:
            for line in lines:
                name, _, value = line.partition(":")
                if name in names:
                    fields[name] = round(int(value.split()[0]) / 1024, 1)
    return fields


async def sessions_main(args: argparse.Namespace, model: Path) -> None:
    import random

    prompt = PromptBuilder(DEFAULT_PERSONA.read_text(encoding="utf-8"))
    impls = ["new", *([args.compare] if args.compare else [])]
    runs = []
    for impl in impls:
        backend = sessions_backend(impl, model, args.threads, args.max_tokens)
        await backend.start(prompt.warm_messages())
        runs.append(SessionsRun(impl, backend, prompt, args.sessions, args.max_tokens, args.max_sentences))
    rng = random.Random(7)
    load: list[float] = []
    for round_no in range(args.rounds + 1):  # round 0 fills the histories: not counted
        delays = [rng.uniform(0, args.stagger) if args.stagger else 0.0 for _ in range(args.sessions)]
        order = runs if round_no % 2 == 0 else runs[::-1]  # A, B then B, A: neither always goes first
        for run in order:
            load.append(os.getloadavg()[0])
            if round_no == 0:
                await run.round(round_no, delays)
                run.turns.clear()
            else:
                await run.round(round_no, delays)
    results: dict[str, Any] = {
        "model": model.name, "threads": args.threads, "sessions": args.sessions, "rounds": args.rounds,
        "stagger_s": args.stagger, "max_tokens": args.max_tokens, "max_sentences": args.max_sentences,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_avg_1min": {"min": min(load), "max": max(load)},
        "impls": {run.name: {**run.summary(), "turns_detail": run.turns} for run in runs},
    }
    if args.rss:
        results["memory_mib"] = {}
        for impl in impls:
            out = subprocess.run(  # noqa: ASYNC221 (the measurements are over; nothing else runs)
                [sys.executable, __file__, "--rss-child", impl, "--sessions", str(args.sessions),
                 "--threads", str(args.threads), "--max-tokens", str(args.max_tokens), "--model", str(model)],
                check=True, capture_output=True, text=True, env={**os.environ, "GOMP_SPINCOUNT": "10000"},
            ).stdout
            results["memory_mib"][impl] = json.loads(out.strip().splitlines()[-1])
    for run in runs:
        await run.backend.close()

    kind = f"staggered over {args.stagger:g} s" if args.stagger else "at once"
    print(f"\n{args.sessions} sessions asking {kind}, {args.rounds} rounds, {model.name}, {args.threads} threads, "
          f"up to {args.max_tokens} tokens / {args.max_sentences} sentences")
    print(f"load average (1 min) during the run: {min(load):.2f} .. {max(load):.2f}\n")
    header = (
        f"{'backend':12} {'turns':>5} {'TTFT p50':>9} {'p90':>7} {'1st chunk p50':>14} {'p90':>7} {'reply p50':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results["impls"].items():
        label = "this branch" if name == "new" else name
        print(f"{label:12} {r['turns']:5d} {r['ttft_ms']['p50']:8.0f}ms {r['ttft_ms']['p90']:5.0f}ms "
              f"{r['first_chunk_ms']['p50']:12.0f}ms {r['first_chunk_ms']['p90']:5.0f}ms {r['total_ms']['p50']:8.0f}ms")
    for name, m in results.get("memory_mib", {}).items():
        label = "this branch" if name == "new" else name
        loaded, after = m["loaded"], m["after_round"]
        print(f"memory {label}: loaded PSS {loaded['Pss']:.0f} MiB (anon {loaded['Pss_Anon']:.0f}, file "
              f"{loaded['Pss_File']:.0f}), RSS {loaded['VmRSS']:.0f} MiB; after a round PSS {after['Pss']:.0f} MiB, "
              f"RSS {after['VmRSS']:.0f} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8, help="replies per backend")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (both backends)")
    parser.add_argument("--max-tokens", type=int, default=None, help="default 80 (--sessions: VF_LLM_MAX_TOKENS's 96)")
    parser.add_argument("--model", type=Path, default=None, help="GGUF (default: packaged SmolLM2)")
    parser.add_argument("--no-server", action="store_true", help="skip the OpenAI-compatible server")
    parser.add_argument("--no-bus", action="store_true", help="skip the turn over Redis")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/llm.json (llm_sessions.json)")
    parser.add_argument("--sessions", type=int, default=0, help="measure N sessions sharing the model (see above)")
    parser.add_argument("--rounds", type=int, default=6, help="with --sessions: turns per session")
    parser.add_argument("--stagger", type=float, default=0.0, help="with --sessions: random start offsets (s)")
    parser.add_argument("--max-sentences", type=int, default=2, help="with --sessions: the reply gate's limit")
    parser.add_argument("--compare", default="", help="with --sessions: also the backend of this git ref (main)")
    parser.add_argument("--rss", action="store_true", help="with --sessions: memory of each, in fresh processes")
    parser.add_argument(
        "--questions",
        choices=("bench", "chat", "client"),
        default="bench",
        help="this file's 8, chat_questions.json's 50 or client_bench.py's 6 (each alone, seed 1, 2... per pass)",
    )
    parser.add_argument("--show-chunks", action="store_true", help="print each reply's first chunk, both ways")
    parser.add_argument("--rss-child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    model = args.model or smollm2_gguf()
    args.max_tokens = args.max_tokens or (LlmSettings().max_tokens if args.sessions or args.rss_child else 80)
    if args.rss_child:
        await asyncio.to_thread(rss_child, args.rss_child, model, args.threads, args.sessions, args.max_tokens)
        return
    if args.sessions:
        args.out = args.out or ROOT / "bench" / "results" / "llm_sessions.json"
        await sessions_main(args, model)
        return
    args.out = args.out or ROOT / "bench" / "results" / "llm.json"
    prompt = PromptBuilder(DEFAULT_PERSONA.read_text(encoding="utf-8"))
    results: dict[str, Any] = {
        "model": model.name,
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_avg_at_start": os.getloadavg(),
        "backends": {},
    }

    llm = LlamaCppLLM(model_path=str(model), n_threads=args.threads, n_ctx=4096, max_tokens=args.max_tokens)
    llama = LlamaCppBackend(llm)
    started = time.perf_counter()
    await llama.start([])
    results["llamacpp_load_ms"] = (time.perf_counter() - started) * 1000
    cold = await one_reply(llama, prompt, QUESTIONS[0], 8)
    results["llamacpp_cold_ttft_ms"] = cold["ttft_ms"]
    questions = question_set(args.questions)
    results["backends"]["llamacpp"] = await measure(llama, prompt, args.runs, args.max_tokens, questions)
    results["llamacpp_cancel_ms"] = await cancel_latency(llama, prompt, 5)

    if not args.no_server:
        server = LocalServer(model, args.threads)
        try:
            server.wait()
            remote = OpenAICompatBackend(server.base_url, "local", "none", max_tokens=args.max_tokens)
            results["backends"]["openai (llama_cpp.server)"] = await measure(
                remote, prompt, args.runs, args.max_tokens, questions
            )
        finally:
            server.stop()

    if not args.no_bus:
        results["bus_turn"] = await bus_turns(llama, args.runs, args.max_tokens)
    await llama.close()

    print(f"\nLLM benchmark: {model.name}, {args.threads} threads, up to {args.max_tokens} tokens, {args.runs} runs")
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in results['load_avg_at_start'])}\n")
    header = (
        f"{'backend':28} {'TTFT p50':>9} {'p90':>7} {'1st chunk p50':>14} {'p90':>7} "
        f"{'clause-only p50':>16} {'p90':>7} {'tok/s p50':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results["backends"].items():
        c = r["first_chunk_clause_only_ms"]
        print(
            f"{name:28} {r['ttft_ms']['p50']:8.0f}ms {r['ttft_ms']['p90']:5.0f}ms "
            f"{r['first_chunk_ms']['p50']:12.0f}ms {r['first_chunk_ms']['p90']:5.0f}ms "
            f"{c['p50']:14.0f}ms {c['p90']:5.0f}ms {r['tokens_per_s']['p50']:10.0f}"
        )
    if args.show_chunks:
        print("\nfirst chunks (llama.cpp): now | clause boundaries only")
        for row in results["backends"]["llamacpp"]["first_chunks"]:
            same = row["first_chunk_text"] == row["first_chunk_text_clause_only"]
            other = f"\n    {row['first_chunk_text_clause_only']!r} ({row['saved_ms']:.0f} ms later)"
            print(f"- {row['question']}\n    {row['first_chunk_text']!r}" + ("  (same)" if same else other))
    print(
        f"\nllama.cpp: load {results['llamacpp_load_ms']:.0f} ms, cold TTFT {results['llamacpp_cold_ttft_ms']:.0f} ms"
    )
    c = results["llamacpp_cancel_ms"]
    print(f"llama.cpp cancel -> model free: p50 {c['p50']:.1f} ms, max {c['max']:.1f} ms")
    if "bus_turn" in results:
        b = results["bus_turn"]
        print(
            f"orchestrator over Redis: TurnRequest -> LLM request p50 {b['turn_to_llm_request_ms']['p50']:.1f} ms, "
            f"-> first token p50 {b['turn_to_first_token_ms']['p50']:.0f} ms, "
            f"-> first SpeakRequest p50 {b['turn_to_first_chunk_ms']['p50']:.0f} ms "
            f"(p90 {b['turn_to_first_chunk_ms']['p90']:.0f} ms)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
