"""Per-user records in SQLite: notes, memories, and the answers of past tool calls.

Every query names the user, so one user's rows are invisible to another.
Numbers are per user and never reused (a counter per user and kind), so "note
3" keeps meaning the same note after others are deleted. Functions here are
synchronous and take the connection: they run on the database thread
(:meth:`tools_worker.store.Database.run`).
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicefleet.catalogue import Item

from .store import transaction

MIGRATIONS = [
    """
    CREATE TABLE counters (user TEXT NOT NULL, kind TEXT NOT NULL, last INTEGER NOT NULL,
                           PRIMARY KEY (user, kind));
    CREATE TABLE notes (user TEXT NOT NULL, num INTEGER NOT NULL, text TEXT NOT NULL,
                        created REAL NOT NULL, updated REAL NOT NULL, call_id TEXT, embedding BLOB,
                        PRIMARY KEY (user, num));
    CREATE UNIQUE INDEX notes_call ON notes (user, call_id);
    CREATE TABLE memories (user TEXT NOT NULL, num INTEGER NOT NULL, text TEXT NOT NULL,
                           created REAL NOT NULL, updated REAL NOT NULL, call_id TEXT, embedding BLOB,
                           PRIMARY KEY (user, num));
    CREATE UNIQUE INDEX memories_call ON memories (user, call_id);
    CREATE TABLE tool_calls (call_id TEXT PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT NULL,
                             result TEXT NOT NULL, created REAL NOT NULL);
    CREATE INDEX tool_calls_created ON tool_calls (created)
    """,
]

CALL_LOG_DAYS = 2.0


class Kind(enum.Enum):
    """What a record is; the value is its table (a closed set: never user input)."""

    NOTE = "notes"
    MEMORY = "memories"


@dataclass
class Record:
    """One note or memory of one user."""

    num: int
    text: str
    created: float
    updated: float
    embedding: np.ndarray | None = None

    def public(self) -> Item:
        return Item(id=self.num, text=self.text, created=self.created, updated=self.updated)


def _record(row: sqlite3.Row) -> Record:
    blob = row["embedding"] if "embedding" in row.keys() else None
    vector = np.frombuffer(blob, dtype=np.float32) if blob else None
    return Record(row["num"], row["text"], row["created"], row["updated"], vector)


def _blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def add(
    conn: sqlite3.Connection,
    kind: Kind,
    user: str,
    text: str,
    call_id: str | None,
    embedding: np.ndarray | None,
) -> tuple[Record, bool]:
    """Store a record; ``(record, False)`` when this ``call_id`` already stored one (a redelivery)."""
    table = kind.value
    with transaction(conn):
        if call_id:
            row = conn.execute(
                f"SELECT * FROM {table} WHERE user = ? AND call_id = ?", (user, call_id)
            ).fetchone()
            if row is not None:
                return _record(row), False
        conn.execute(
            "INSERT INTO counters (user, kind, last) VALUES (?, ?, 1) "
            "ON CONFLICT (user, kind) DO UPDATE SET last = last + 1",
            (user, table),
        )
        num = conn.execute(
            "SELECT last FROM counters WHERE user = ? AND kind = ?", (user, table)
        ).fetchone()[0]
        now = time.time()
        conn.execute(
            f"INSERT INTO {table} (user, num, text, created, updated, call_id, embedding) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user, num, text, now, now, call_id, _blob(embedding)),
        )
    return Record(num, text, now, now, embedding), True


def all_of(conn: sqlite3.Connection, kind: Kind, user: str) -> list[Record]:
    """Every record of ``user``, oldest first."""
    rows = conn.execute(f"SELECT * FROM {kind.value} WHERE user = ? ORDER BY num", (user,)).fetchall()
    return [_record(r) for r in rows]


def get(conn: sqlite3.Connection, kind: Kind, user: str, num: int) -> Record | None:
    row = conn.execute(f"SELECT * FROM {kind.value} WHERE user = ? AND num = ?", (user, num)).fetchone()
    return None if row is None else _record(row)


def delete(conn: sqlite3.Connection, kind: Kind, user: str, num: int) -> Record | None:
    """Remove one record; the removed record, or None when ``user`` has no such number."""
    with transaction(conn):
        row = conn.execute(
            f"SELECT * FROM {kind.value} WHERE user = ? AND num = ?", (user, num)
        ).fetchone()
        if row is None:
            return None
        conn.execute(f"DELETE FROM {kind.value} WHERE user = ? AND num = ?", (user, num))
    return _record(row)


def update(
    conn: sqlite3.Connection, kind: Kind, user: str, num: int, text: str, embedding: np.ndarray | None
) -> Record | None:
    with transaction(conn):
        cur = conn.execute(
            f"UPDATE {kind.value} SET text = ?, embedding = ?, updated = ? WHERE user = ? AND num = ?",
            (text, _blob(embedding), time.time(), user, num),
        )
        if cur.rowcount == 0:
            return None
    return get(conn, kind, user, num)


def export(conn: sqlite3.Connection, user: str) -> dict[str, Any]:
    """Everything stored for ``user`` as JSON-ready data."""
    return {
        "user": user,
        "notes": [r.public().model_dump() for r in all_of(conn, Kind.NOTE, user)],
        "memories": [r.public().model_dump() for r in all_of(conn, Kind.MEMORY, user)],
    }


# --- answers of past calls: a redelivered call gets the same answer, not a second effect ---


def cached_result(conn: sqlite3.Connection, call_id: str, user: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT result FROM tool_calls WHERE call_id = ? AND user = ?", (call_id, user)
    ).fetchone()
    return None if row is None else dict(json.loads(row["result"]))


def remember_result(conn: sqlite3.Connection, call_id: str, user: str, name: str, result: dict[str, Any]) -> None:
    now = time.time()
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO tool_calls (call_id, user, name, result, created) VALUES (?, ?, ?, ?, ?)",
            (call_id, user, name, json.dumps(result), now),
        )
        conn.execute("DELETE FROM tool_calls WHERE created < ?", (now - CALL_LOG_DAYS * 86400,))
