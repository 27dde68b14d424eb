"""Chat quality of the model path: echoes, stuck replies, length, first-chunk latency.

    .venv/bin/python bench/chat_quality.py [--limit 15] [--label before]

Drives the real orchestrator (``LlmService`` with the backends its default
settings build: the packaged SmolLM2 in llama.cpp) over the real Redis with
the typed sentences of ``bench/chat_questions.json``: five conversations of
ten turns (greetings, small talk, how-to, facts, opinions, follow-ups). Like
a person would, it cuts some replies short: ``done`` turns get a cancel right
after ``reply_done`` (the audio would still be playing), ``mid`` turns one
after the first chunk went to speech. Before each turn the previous one is
cancelled as the gateway does for a new typed turn.

It reports, over every reply (the text the client sees):

* echo: the reply repeats the user's words (target 0%);
* stuck: the reply repeats the previous reply to a different question (target 0%);
* the median reply length in words (target at most 30);
* claims: the reply says it did something (noted, set a timer...) when no tool ran;
* fallbacks: the reply is the orchestrator's honest "don't know" sentence;
* first token and first chunk (the first ``SpeakRequest``, what TTS starts
  from) after the turn was enqueued: p50/p90.

Prints a table and writes bench/results/chat_quality[_LABEL].json.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import logging
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import summary, table, write  # noqa: E402
from llm_orchestrator.settings import LlmSettings  # noqa: E402
from llm_orchestrator.worker import LlmService  # noqa: E402
from voicefleet.bus import Bus  # noqa: E402
from voicefleet.messages import ReplyDelta, ReplyDone, SpeakRequest, ToolCall, TurnRequest, new_id, now  # noqa: E402
from voicefleet.settings import BusSettings  # noqa: E402

QUESTIONS = Path(__file__).with_name("chat_questions.json")
#: A reply this similar (difflib ratio over words) to the question or to the previous reply is a copy.
SIMILAR = 0.75
#: Claims of an action that only a tool can do (the bench sends no tool results).
CLAIM = re.compile(
    r"\b(noted|i'?ve (noted|saved|added|set|stored|written)|i('ll| will) remember|i'?ve remembered|"
    r"timer (is )?set|set a timer|saved (it|that|your)|that'?s note \d+|added (it|that) to)\b",
    re.IGNORECASE,
)
#: The orchestrator's honest fallbacks start like this.
FALLBACK = re.compile(r"^sorry, i (don't|do not|can't)", re.IGNORECASE)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


def similarity(a: str, b: str) -> float:
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return 0.0
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def contains_run(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def is_echo(question: str, reply: str) -> bool:
    """The reply (or its first sentence) is the question again, or holds the whole question."""
    q = words(question)
    if not q or not reply.strip():
        return False
    if similarity(question, reply) >= SIMILAR:
        return True
    # The first sentence alone counts for a real sentence, not for a greeting ("Hello." -> "Hello! How...").
    if len(q) >= 3 and similarity(question, first_sentence(reply)) >= SIMILAR:
        return True
    return len(q) >= 4 and contains_run(words(reply), q)


def is_stuck(question: str, reply: str, previous_question: str, previous_reply: str) -> bool:
    """The reply repeats the previous reply, and the question was a different one."""
    if not previous_reply.strip() or not reply.strip() or similarity(question, previous_question) >= SIMILAR:
        return False
    if similarity(reply, previous_reply) >= SIMILAR:
        return True
    first, before = first_sentence(reply), first_sentence(previous_reply)
    return len(words(first)) >= 5 and words(first) == words(before)


class Session:
    """One conversation: sends typed turns and reads what came back."""

    def __init__(self, bus: Bus, name: str) -> None:
        self.bus = bus
        self.session_id = f"chatq-{name}-{new_id()[:6]}"
        self.out_last: bytes | str = "0"
        self.previous_turn = ""

    async def turn(self, text: str, interrupt: str | None, timeout_s: float) -> dict[str, Any]:
        bus = self.bus
        if self.previous_turn:  # what the gateway does before a new typed turn
            await bus.cancel(self.session_id, self.previous_turn, "new_turn")
        turn = TurnRequest(session_id=self.session_id, turn_id=new_id(), text=text, source="text", user="bench")
        turn.ts["eot"] = turn.ts["transcript"] = now()
        self.previous_turn = turn.turn_id
        newest = await bus.redis.xrevrange(bus.keys.speak, count=1)
        speak_last: bytes | str = newest[0][0] if newest else "0"
        await bus.enqueue(bus.keys.turns, turn)
        deltas: list[str] = []
        tools = 0
        done: ReplyDone | None = None
        cancelled_mid = False
        async with asyncio.timeout(timeout_s):
            while done is None:
                if interrupt == "mid" and not cancelled_mid:
                    for entry in await bus.read(bus.keys.speak, speak_last, block_ms=1, count=100):
                        speak_last = entry.id
                        msg = entry.message
                        if isinstance(msg, SpeakRequest) and msg.turn_id == turn.turn_id and msg.text:
                            await asyncio.sleep(0.3)  # the person hears the start, then talks over it
                            await bus.cancel(self.session_id, turn.turn_id, "client")
                            cancelled_mid = True
                            break
                for entry in await bus.read(bus.keys.out(self.session_id), self.out_last, block_ms=20, count=200):
                    self.out_last = entry.id
                    msg = entry.message
                    if msg is None or msg.turn_id != turn.turn_id:
                        continue
                    if isinstance(msg, ReplyDelta):
                        deltas.append(msg.text)
                    elif isinstance(msg, ToolCall):
                        tools += 1
                    elif isinstance(msg, ReplyDone):
                        done = msg
        if interrupt == "done":
            await bus.cancel(self.session_id, turn.turn_id, "client")
        ts = done.ts
        origin = ts["transcript"]
        reply = "".join(deltas).strip()
        return {
            "session": self.session_id,
            "question": text,
            "reply": reply,
            "spoken": done.text,
            "interrupt": interrupt or "",
            "interrupted": done.interrupted,
            "tool_calls": tools,
            "words": len(words(reply)),
            "first_token_ms": (ts["llm_first_token"] - origin) * 1000 if "llm_first_token" in ts else None,
            "first_chunk_ms": (ts["first_chunk"] - origin) * 1000 if "first_chunk" in ts else None,
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    bus_settings = BusSettings(key_prefix=f"bench-chatq-{new_id()[:6]}", health_ttl_s=2)
    bus = Bus(bus_settings)
    service = LlmService(LlmSettings(bus=bus_settings, tool_timeout_s=0.3, memory_timeout_s=0.1))
    runner = asyncio.create_task(service.run())
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        async with asyncio.timeout(120):
            while not service.ready:  # noqa: ASYNC110 (the service exposes a flag, not an event)
                await asyncio.sleep(0.05)
        budget = args.limit
        for conversation in data["sessions"]:
            session = Session(bus, conversation["name"])
            previous: dict[str, Any] | None = None
            for item in conversation["turns"]:
                if budget is not None and budget <= 0:
                    break
                budget = None if budget is None else budget - 1
                r = await session.turn(item["text"], item.get("interrupt"), args.timeout)
                r["kind"] = item.get("kind", "")
                r["echo"] = is_echo(r["question"], r["reply"])
                r["stuck"] = previous is not None and is_stuck(
                    r["question"], r["reply"], previous["question"], previous["reply"]
                )
                r["claim"] = r["tool_calls"] == 0 and bool(CLAIM.search(r["reply"]))
                r["fallback"] = bool(FALLBACK.match(r["reply"]))
                results.append(r)
                previous = r
                flags = " ".join(k for k in ("echo", "stuck", "claim", "fallback") if r[k])
                print(
                    f"  {len(results):2d} {r['first_chunk_ms'] or 0:6.0f} ms {r['words']:3d} w "
                    f"{flags:12} {r['question'][:38]!r} -> {r['reply'][:70]!r}",
                    flush=True,
                )
    finally:
        service.stop()
        await asyncio.wait_for(runner, 30)
        keys = [k async for k in bus.redis.scan_iter(match=f"{bus_settings.key_prefix}:*")]
        if keys:
            await bus.redis.delete(*keys)
        await bus.close()
    n = len(results)

    def share(key: str) -> float:
        return 100.0 * sum(bool(r[key]) for r in results) / n if n else float("nan")

    metrics = {
        "turns": n,
        "echo_pct": share("echo"),
        "stuck_pct": share("stuck"),
        "claim_pct": share("claim"),
        "fallback_pct": share("fallback"),
        "median_words": statistics.median(r["words"] for r in results) if n else float("nan"),
        "max_words": max((r["words"] for r in results), default=0),
        "first_token_ms": summary([r["first_token_ms"] for r in results if r["first_token_ms"] is not None]),
        "first_chunk_ms": summary([r["first_chunk_ms"] for r in results if r["first_chunk_ms"] is not None]),
        "wall_s": time.perf_counter() - started,
    }
    rows = [
        {"metric": "replies repeating the user's words (%)", "value": metrics["echo_pct"], "target": "0"},
        {"metric": "replies repeating the previous reply (%)", "value": metrics["stuck_pct"], "target": "0"},
        {"metric": "replies claiming an action no tool did (%)", "value": metrics["claim_pct"], "target": "0"},
        {"metric": "honest fallbacks (%)", "value": metrics["fallback_pct"], "target": "low"},
        {"metric": "median reply length (words)", "value": float(metrics["median_words"]), "target": "<= 30"},
        {"metric": "longest reply (words)", "value": metrics["max_words"], "target": ""},
        {"metric": "first token p50 (ms)", "value": metrics["first_token_ms"]["p50"], "target": ""},
        {"metric": "first chunk p50 (ms)", "value": metrics["first_chunk_ms"]["p50"], "target": "no worse"},
        {"metric": "first chunk p90 (ms)", "value": metrics["first_chunk_ms"]["p90"], "target": "no worse"},
    ]
    print(f"\nchat quality: {n} typed turns, {metrics['wall_s']:.0f} s")
    print(table(rows, ["metric", "value", "target"]))
    return {"label": args.label, "questions": str(QUESTIONS.relative_to(ROOT)), "summary": metrics, "turns": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N turns (quick runs)")
    parser.add_argument("--label", default="", help="suffix of the JSON file, e.g. before / after")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per turn")
    parser.add_argument("--verbose", action="store_true", help="show the orchestrator's log")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    data = asyncio.run(run(args))
    name = f"chat_quality_{args.label}" if args.label else "chat_quality"
    print(f"\nwrote {write(name, data)}")


if __name__ == "__main__":
    main()
