"""``python -m tools_worker [serve|index|export]``: wiring only."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from voicefleet.logs import setup_logging
from voicefleet.models import ModelMissing

from .settings import ToolsSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools_worker",
        description="The voicefleet tools worker: notes, memory, file search, web search, timers, time, and the "
        "tools of MCP servers (VF_TOOLS_MCP_SERVERS). "
        "Settings come from VF_TOOLS_* environment variables (and .env).",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="answer tool calls from the bus (the default)")
    index = sub.add_parser("index", help="index changed files in VF_TOOLS_SEARCH_DIRS, with a progress bar")
    index.add_argument("--no-wait", action="store_true", help="give up if another indexer is running")
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("folders", help="print the folders file search covers, one a line")
    export = sub.add_parser("export", help="print one user's notes and memories as JSON")
    export.add_argument("--user", required=True, help="the user (JWT subject)")
    args = parser.parse_args(argv)

    settings = ToolsSettings()
    command = args.command or "serve"
    quiet = command in ("export", "folders")
    setup_logging("tools", "WARNING" if quiet else settings.bus.log_level, settings.bus.log_json)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which CPU build it picked, at INFO
    try:
        if command == "index":
            return _index(settings, wait=not args.no_wait, progress=not args.quiet)
        if command == "export":
            return _export(settings, args.user)
        if command == "folders":
            for folder in settings.search_dirs:
                print(folder)
            return 0
        return _serve(settings)
    except ModelMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _serve(settings: ToolsSettings) -> int:
    from voicefleet.service import main_entry

    from .worker import ToolsService

    main_entry(ToolsService(settings))
    return 0


def _index(settings: ToolsSettings, wait: bool, progress: bool) -> int:
    from .embeddings import load_embedder
    from .file_index import Indexer, open_index_db
    from .paths import SafePaths

    if not settings.search_dirs:
        print("error: no folders to index: set VF_TOOLS_SEARCH_DIRS (comma-separated folders)", file=sys.stderr)
        return 2
    db = open_index_db(settings.index_db)
    try:
        indexer = Indexer(
            db,
            load_embedder(settings.embed_threads),
            SafePaths(settings.search_dirs),
            settings.data_dir / "file_index.lock",
            chunk_tokens=settings.chunk_tokens,
            max_bytes=int(settings.max_file_mb * (1 << 20)),
        )
        report = indexer.sync(progress=progress, wait=wait)
    finally:
        db.close()
    if report is None:
        print("another indexer is running; try again later", file=sys.stderr)
        return 3
    print(report.summary())
    return 0


def _export(settings: ToolsSettings, user: str) -> int:
    from . import records
    from .store import Database

    db = Database(settings.notes_db, records.MIGRATIONS)
    try:
        print(json.dumps(db.call(records.export, user), indent=2, ensure_ascii=False))
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
