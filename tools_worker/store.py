"""SQLite, used from one dedicated thread so the event loop never waits on disk.

Every database of the tools worker is a :class:`Database`: WAL mode (readers
never block the writer, and a crash loses nothing committed), a busy timeout
so that several worker processes and the ``index`` command can share a file,
and a schema versioned with ``PRAGMA user_version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Database:
    """One SQLite file and the single thread that touches it."""

    def __init__(self, path: Path, migrations: Sequence[str]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One thread owns the connection: sqlite3 objects are not safe to share,
        # and serializing writes in-process avoids SQLITE_BUSY among our own tasks.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{path.stem}")
        self.conn: sqlite3.Connection = self._executor.submit(self._open, migrations).result()

    def _open(self, migrations: Sequence[str]) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(migrations[version:], start=version + 1):
            with _transaction(conn):
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")
            log.info("database %s at schema version %d", self.path.name, number)
        return conn

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, self.conn, *args))

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the database thread from synchronous code (CLI, indexer)."""
        return self._executor.submit(fn, self.conn, *args).result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._executor.submit(self.conn.close).result()
        self._executor.shutdown(wait=True)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error): take the write lock up front."""
    with _transaction(conn):
        yield conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    # executescript() would commit our transaction; split instead (no ';' inside our DDL strings).
    return [s.strip() for s in script.split(";") if s.strip()]
