"""What tracing costs one hop: the CPU a message spends in the codec and the tracing code, per hop.

    .venv/bin/python bench/trace_bench.py [--n 20000] [--repeats 7]

One hop is what every bus message goes through between two services: the
sender opens its span and stamps the context on the message (``Bus.add``
calls ``tracing.inject``), the codec encodes it, the receiver decodes it and
opens its span from the message's context. Three ways, in one process, no
Redis (the Redis round trip is ``bench/bus_bench.py``'s):

* ``no tracing code``: encode and decode only, as before tracing was added;
* ``tracing off``: the same hop through the tracing calls, nothing configured (the default);
* ``tracing on``: the SDK records both spans (exported in the background to a file; that
  thread's CPU is not counted).

Prints microseconds per hop (median of the repeats) and writes bench/results/trace.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write
from voicefleet import codec, tracing
from voicefleet.messages import SpeakRequest, TurnRequest
from voicefleet.settings import BusSettings


def _plain_hop(msg: TurnRequest) -> None:
    fields = {codec.HEADER: msg.model_dump_json(exclude={"audio"}).encode()}
    codec.decode(fields)


def _traced_hop(msg: TurnRequest) -> None:
    with tracing.span("sender", msg):
        tracing.inject(msg)
        fields = codec.encode(msg)
    received = codec.decode(fields)
    with tracing.span("receiver", received):
        tracing.inject(SpeakRequest(text="x"))
    msg.traceparent = None


def _time(hop: object, n: int, repeats: int, pause_s: float = 0.0) -> float:
    msg = TurnRequest(session_id="s" * 16, turn_id="t" * 16, user="u" * 16, text="set a timer for five minutes")
    results = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            hop(msg)  # type: ignore[operator]
        results.append((time.perf_counter() - started) / n * 1e6)
        time.sleep(pause_s)
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="hops per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    results = {
        "no tracing code": _time(_plain_hop, args.n, args.repeats),
        "tracing off": _time(_traced_hop, args.n, args.repeats),
    }
    with tempfile.TemporaryDirectory() as folder:
        tracing.setup("bench", BusSettings(trace_file=os.path.join(folder, "spans.jsonl")))
        try:
            # Batches of 900 hops (1,800 spans) fit the SDK's queue of 2,048: none is dropped unmeasured.
            results["tracing on"] = _time(_traced_hop, 900, args.repeats, pause_s=0.5)
        finally:
            tracing.shutdown()
    base = results["no tracing code"]
    rows = [{"hop": k, "us_per_hop": v, "added_us": v - base} for k, v in results.items()]
    print("CPU per bus hop (sender span + encode, decode + receiver span), microseconds, one process\n")
    print(table(rows, ["hop", "us_per_hop", "added_us"]))
    path = write("trace", {"unit": "us", "n": args.n, "repeats": args.repeats, "hops": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
