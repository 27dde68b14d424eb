"""Intent layer: does each phrasing reach the right tool, and does chat reach none?

    .venv/bin/python bench/intents.py [--corpus bench/data/intents_en.tsv ...] [--no-nearest] [--show-errors]
    .venv/bin/python bench/intents.py --spoken [--limit 60] [--corpus ...]   # through the whole fleet

Each corpus line is ``text<TAB>tool<TAB>args-json`` (tool ``none`` for chat).
A line is right when the parser picks the expected tool (``none``: no tool);
its arguments are right when every expected argument is there with the
expected value (text compared without case and final punctuation). A false
tool call is a chat line that got a tool. Corpora: ``intents_en.tsv`` and
``intents_fr.tsv`` were written with the templates; the ``heldout`` files
were written by someone who never saw the templates. Prints a table per
corpus and writes bench/results/intents.json.

``--spoken`` says each line with the Piper voice and streams it in real time
through a private fleet (``bench/client_bench.py``'s ``--spawn``) with the
headless client; the tool is the first ``tool_call`` event of the turn (none:
no tool call). Writes bench/results/intents_spoken.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import summary, table, write  # noqa: E402
from llm_orchestrator.intents import Intent, IntentParser  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_CORPORA = ["intents_en.tsv", "intents_heldout_en.tsv", "intents_heldout2_en.tsv", "intents_heldout3_en.tsv",
                   "intents_fr.tsv", "intents_heldout_fr.tsv"]


def load(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, tool, args = line.split("\t")
        rows.append((text, tool, json.loads(args)))
    return rows


def language_of(path: Path) -> str:
    return "fr" if "_fr" in path.stem else "en"


def _norm(value: Any) -> str:
    return re.sub(r"[\s.!?,;:'\"]+", " ", str(value).lower()).strip()


def args_match(expected: dict[str, Any], intent: Intent | None) -> bool:
    if intent is None:
        return not expected
    got = intent.args
    for key, want in expected.items():
        if key == "query" or key == "text" or key == "label":
            # Articles and politeness around free text are the tool's business, not a miss.
            strip = r"^(?:the|a|an|my|le|la|les|l|un|une|mon|ma|mes|des|du|de)\s+"
            if re.sub(strip, "", _norm(got.get(key, ""))) != re.sub(strip, "", _norm(want)):
                return False
        elif _norm(got.get(key, "")) != _norm(want):
            return False
    return True


def evaluate(parser: IntentParser, path: Path) -> dict[str, Any]:
    rows = load(path)
    language = language_of(path)
    per_tool: dict[str, Counter[str]] = defaultdict(Counter)
    errors = []
    times = []
    for text, tool, args in rows:
        started = time.perf_counter()
        intent = parser.parse(text, language)
        times.append((time.perf_counter() - started) * 1000)
        got = intent.tool if intent is not None else "none"
        counts = per_tool[tool]
        counts["n"] += 1
        if got == tool:
            counts["right"] += 1
            if tool != "none" and args_match(args, intent):
                counts["args_right"] += 1
            elif tool != "none":
                errors.append({"text": text, "want": tool, "got": got, "want_args": args,
                               "got_args": intent.args if intent else {}, "kind": "args"})
        else:
            errors.append({"text": text, "want": tool, "got": got, "want_args": args,
                           "got_args": intent.args if intent else {}, "kind": "tool",
                           "stage": intent.stage if intent else ""})
    tools = [t for t in per_tool if t != "none"]
    commands = sum(per_tool[t]["n"] for t in tools)
    chat = per_tool["none"]["n"]
    false_calls = chat - per_tool["none"]["right"]
    right = sum(c["right"] for c in per_tool.values())
    return {
        "corpus": path.name,
        "language": language,
        "lines": len(rows),
        "right": right / len(rows),
        "commands_right": sum(per_tool[t]["right"] for t in tools) / max(1, commands),
        "args_right": sum(per_tool[t]["args_right"] for t in tools) / max(1, commands),
        "false_calls": false_calls / max(1, chat),
        "false_calls_n": false_calls,
        "chat_lines": chat,
        "per_tool": {t: {"n": c["n"], "right": c["right"] / c["n"], "args_right": c["args_right"] / c["n"]}
                     for t, c in sorted(per_tool.items())},
        "parse_ms": summary(times),
        "errors": errors,
    }


async def _spoken(url: str, token: str, rows: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    from audio_client.headless import HeadlessClient
    from audio_client.protocol import StartOptions
    from bench.client_bench import speak

    out = []
    async with HeadlessClient(url, token, StartOptions(wake_word="")) as client:
        for i, (text, tool, _) in enumerate(rows):
            result = await client.say(speak(text), trailing_silence_s=1.0, timeout_s=60)
            calls = [t["name"] for t in result.tools if "args" in t]
            got = calls[0] if calls else "none"
            out.append({"text": text, "want": tool, "got": got, "transcript": result.transcript})
            print(f"  {i + 1}/{len(rows)} {'ok ' if got == tool else 'BAD'} {text!r} -> {result.transcript!r}: {got}",
                  flush=True)
    return out


def spoken(paths: list[Path], limit: int) -> None:
    import asyncio
    import random

    from bench.client_bench import spawned_fleet

    rows = [r for p in paths if language_of(p) == "en" for r in load(p)]
    rows = random.Random(7).sample(rows, min(limit, len(rows)))
    with spawned_fleet() as (url, token):
        turns = asyncio.run(_spoken(url, token, rows))
    chat = [t for t in turns if t["want"] == "none"]
    summary_row = {"lines": len(turns), "right": sum(t["got"] == t["want"] for t in turns) / len(turns),
                   "false calls": sum(t["got"] != "none" for t in chat) / max(1, len(chat))}
    print(table([summary_row], ["lines", "right", "false calls"]))
    print(f"\nwrote {write('intents_spoken', {'corpora': [p.name for p in paths], **summary_row, 'turns': turns})}")


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--corpus", nargs="*", help="TSV files (default: every corpus under bench/data)")
    cli.add_argument("--no-nearest", action="store_true", help="templates only, without the second stage")
    cli.add_argument("--show-errors", action="store_true")
    cli.add_argument("--spoken", action="store_true", help="speak the English lines through a private fleet")
    cli.add_argument("--limit", type=int, default=60, help="with --spoken: lines drawn at random")
    opts = cli.parse_args()
    paths = [Path(p) for p in opts.corpus] if opts.corpus else [DATA / n for n in DEFAULT_CORPORA]
    paths = [p for p in paths if p.exists()]
    if opts.spoken:
        spoken(paths, opts.limit)
        return

    second = None
    if not opts.no_nearest:
        from llm_orchestrator.intents.nearest import load_nearest

        second = load_nearest()
    parser = IntentParser(second_stage=second)
    reports = [evaluate(parser, p) for p in paths]

    print(table(
        [{"corpus": r["corpus"], "lines": r["lines"], "right": r["right"], "commands right": r["commands_right"],
          "args right": r["args_right"],
          "false calls": f"{r['false_calls']:.3f} ({r['false_calls_n']}/{r['chat_lines']})",
          "parse p50 ms": r["parse_ms"]["p50"]} for r in reports],
        ["corpus", "lines", "right", "commands right", "args right", "false calls", "parse p50 ms"],
    ))
    for r in reports:
        print(f"\n{r['corpus']}: per tool")
        print(table([{"tool": t, **v} for t, v in r["per_tool"].items()], ["tool", "n", "right", "args_right"]))
        if opts.show_errors:
            for e in r["errors"]:
                print(f"  [{e['kind']}] {e['text']!r}: want {e['want']} {e['want_args']}, "
                      f"got {e['got']} {e['got_args']}")
    path = write("intents", {"second_stage": second is not None, "corpora": reports})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
