"""Tools worker: file indexing speed, search latency, embedding throughput.

    .venv/bin/python bench/tools_bench.py [--files 200] [--queries 200] [--threads 0]

Indexes a generated folder (tests/tools_corpus.py: one subject per file, ten
topics) into a fresh manifest, re-runs the indexer with nothing changed, then
times content queries through the same path ``files.search`` uses, and
embeds short sentences in batches. Prints a table and writes
bench/results/tools.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tools_corpus import write_corpus  # noqa: E402

from bench.common import summary, table, write  # noqa: E402
from tools_worker.embeddings import load_embedder  # noqa: E402
from tools_worker.file_index import FileSearch, Indexer, open_index_db  # noqa: E402
from tools_worker.paths import SafePaths  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    args = parser.parse_args()

    started = time.perf_counter()
    embedder = load_embedder(args.threads)
    load_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        folder, data = Path(tmp) / "docs", Path(tmp) / "data"
        docs = write_corpus(folder, args.files)
        db = open_index_db(data / "file_index.sqlite")
        indexer = Indexer(db, embedder, SafePaths([folder]), data / "lock")
        report = indexer.sync()
        assert report is not None
        again = indexer.sync()
        assert again is not None and not again.modified

        search = FileSearch(db, embedder)
        t0 = time.perf_counter()
        search.refresh()
        load_index_s = time.perf_counter() - t0
        latencies, top3 = [], 0
        for i in range(args.queries):
            doc = docs[i % len(docs)]
            t0 = time.perf_counter()
            hits = search.search(doc.query, 3)
            latencies.append((time.perf_counter() - t0) * 1000)
            top3 += doc.path.resolve() in [h.path for h in hits]
        db.close()

    sentences = [f"Sentence {i}: remember to water the plants and call the bank on Friday." for i in range(512)]
    embedder.embed(sentences[:32])
    t0 = time.perf_counter()
    embedder.embed(sentences)
    per_s = len(sentences) / (time.perf_counter() - t0)

    q = summary(latencies)
    rows = [
        {"measure": "model load + warm-up", "value": load_s, "unit": "s"},
        {"measure": f"index {args.files} files", "value": report.seconds, "unit": "s"},
        {"measure": "index rate", "value": args.files / report.seconds, "unit": "files/s"},
        {"measure": "passages embedded", "value": float(report.chunks_embedded), "unit": "passages"},
        {"measure": "re-index, nothing changed", "value": again.seconds * 1000, "unit": "ms"},
        {"measure": "load index (FAISS rebuild)", "value": load_index_s * 1000, "unit": "ms"},
        {"measure": "query latency p50", "value": q["p50"], "unit": "ms"},
        {"measure": "query latency p90", "value": q["p90"], "unit": "ms"},
        {"measure": "right file in top 3", "value": 100.0 * top3 / args.queries, "unit": "%"},
        {"measure": "embedding throughput", "value": per_s, "unit": "sentences/s"},
    ]
    print(table(rows, ["measure", "value", "unit"]))
    path = write(
        "tools",
        {
            "files": args.files,
            "threads": args.threads,
            "model_load_s": load_s,
            "index": {
                "seconds": report.seconds,
                "files_per_s": args.files / report.seconds,
                "passages": report.chunks_embedded,
                "unchanged_pass_s": again.seconds,
                "load_ms": load_index_s * 1000,
            },
            "query_ms": q,
            "top3_accuracy": top3 / args.queries,
            "embedding_sentences_per_s": per_s,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
