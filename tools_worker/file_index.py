"""File search: an incremental indexer and a searcher over the configured folders.

The source of truth is a SQLite manifest (``file_index.sqlite``): one row per
file (path, size, mtime, SHA-256) and one per chunk with its embedding. The
indexer re-embeds only files whose content changed (size or mtime differ *and*
the hash differs). FAISS cannot delete vectors reliably, so the searchable
view is never patched: whenever the manifest changes (its ``generation``
goes up) the view rebuilds a llama-index ``VectorStoreIndex`` on a fresh
FAISS ``IndexFlatIP`` from the stored embeddings, which takes milliseconds per
thousand chunks and no model time.

Search combines three signals: exact file name, fuzzy file name (rapidfuzz)
and content (cosine of MiniLM embeddings through the llama-index retriever).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import MetadataMode, TextNode
from llama_index.vector_stores.faiss import FaissVectorStore
from rapidfuzz import fuzz, process
from tqdm import tqdm  # type: ignore[import-untyped]

from voicefleet import catalogue
from voicefleet.embeddings import DIMENSION

from .embeddings import MiniLMEmbedding
from .paths import SafePaths
from .store import Database, transaction

log = logging.getLogger(__name__)

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".org", ".csv", ".log", ".text"})
SUPPORTED = TEXT_SUFFIXES | {".pdf"}
EMBED_BATCH_CHUNKS = 64  # files are embedded in groups of about this many chunks
MIN_CONTENT_SCORE = 0.25  # cosine below this is noise for MiniLM
FUZZY_CUTOFF = 85.0

MIGRATIONS = [
    """
    CREATE TABLE files (path TEXT PRIMARY KEY, root TEXT NOT NULL, name TEXT NOT NULL,
                        size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,
                        chunks INTEGER NOT NULL, error TEXT, indexed_at REAL NOT NULL);
    CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT,
                         path TEXT NOT NULL REFERENCES files (path) ON DELETE CASCADE,
                         seq INTEGER NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL);
    CREATE INDEX chunks_path ON chunks (path);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('generation', '0')
    """,
]


def open_index_db(path: Path) -> Database:
    return Database(path, MIGRATIONS)


# ---------------------------------------------------------------------------
# reading files
# ---------------------------------------------------------------------------


def extract_text(path: Path) -> str:
    """The text of a text, markdown or PDF file ("" when there is none)."""
    if path.suffix.lower() == ".pdf":
        from pypdf import PdfReader  # imported here: only PDFs need it

        reader = PdfReader(path)
        if reader.is_encrypted:
            reader.decrypt("")  # many "encrypted" PDFs have an empty user password
        return "\n".join(page.extract_text() or "" for page in reader.pages)
    return path.read_text(encoding="utf-8", errors="replace")


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Seen:
    """A file found on disk by a scan."""

    path: Path  # resolved
    root: Path
    size: int
    mtime_ns: int


@dataclass
class IndexReport:
    """What one indexing pass did."""

    scanned: int = 0
    added: int = 0
    changed: int = 0
    touched: int = 0  # mtime changed, content did not: not re-embedded
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0  # unsupported, too big, or linking outside the folders
    errors: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    generation: int = 0
    embedded_files: list[str] = field(default_factory=list)

    @property
    def modified(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        return (
            f"{self.scanned} files: {self.added} new, {self.changed} changed, {self.removed} removed, "
            f"{self.unchanged + self.touched} unchanged, {self.skipped} skipped, {self.errors} unreadable; "
            f"{self.chunks_embedded} passages embedded in {self.seconds:.1f} s"
        )


# ---------------------------------------------------------------------------
# indexing
# ---------------------------------------------------------------------------


class Indexer:
    """Brings the manifest in line with the folders, embedding only what changed."""

    def __init__(
        self,
        db: Database,
        embedder: MiniLMEmbedding,
        safe: SafePaths,
        lock_path: Path,
        chunk_tokens: int = 200,
        max_bytes: int = 20 << 20,
    ) -> None:
        self.db, self.embedder, self.safe = db, embedder, safe
        self.lock_path, self.max_bytes = lock_path, max_bytes
        self.splitter = SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=chunk_tokens // 10)

    def scan(self, report: IndexReport) -> dict[str, Seen]:
        """Supported files under the folders; symlinks leading outside are skipped."""
        found: dict[str, Seen] = {}
        for root in self.safe.roots:
            if not root.is_dir():
                log.warning("search folder %s does not exist", root)
                continue
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith(".") or Path(name).suffix.lower() not in SUPPORTED:
                        continue
                    seen = self._seen(Path(dirpath) / name)
                    if seen is None:
                        report.skipped += 1
                    else:
                        found.setdefault(str(seen.path), seen)
        report.scanned = len(found)
        return found

    def _seen(self, path: Path) -> Seen | None:
        root = self.safe.root_of(path)
        if root is None:
            log.info("skipping %s: it links outside the search folders", path)
            return None
        try:
            real = path.resolve(strict=True)
            st = real.stat()
        except (OSError, RuntimeError):
            return None
        if not real.is_file() or st.st_size > self.max_bytes:
            return None
        return Seen(real, root, st.st_size, st.st_mtime_ns)

    @contextlib.contextmanager
    def _locked(self, wait: bool) -> Iterator[bool]:
        # One indexer at a time across processes (workers and the `index` command).
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def sync(self, progress: bool = False, wait: bool = True) -> IndexReport | None:
        """One pass over the folders; None when another indexer holds the lock and ``wait`` is False."""
        with self._locked(wait) as got:
            if not got:
                return None
            return self._sync(progress)

    def _sync(self, progress: bool) -> IndexReport:
        started = time.monotonic()
        report = IndexReport()
        found = self.scan(report)
        known = self.db.call(_manifest)
        # A folder that is missing right now (an unmounted disk) keeps its files in the manifest.
        mounted = {str(r) for r in self.safe.roots if r.is_dir()}
        configured = {str(r) for r in self.safe.roots}
        gone = [p for p, row in known.items()
                if p not in found and (row["root"] in mounted or row["root"] not in configured)]
        todo: list[Seen] = []
        for key, seen in found.items():
            row = known.get(key)
            if row is not None and row["size"] == seen.size and row["mtime_ns"] == seen.mtime_ns:
                report.unchanged += 1
            else:
                todo.append(seen)
        batch: list[tuple[Seen, str, list[TextNode] | None, str | None]] = []
        pending_chunks = 0
        # The bar moves when files are done (embedded and stored), not when they are read.
        bar = tqdm(total=len(todo), desc="indexing", unit="file", disable=not progress, leave=progress)
        for seen in todo:
            key = str(seen.path)
            try:
                digest = file_hash(seen.path)
            except OSError as exc:
                log.warning("cannot read %s: %s", seen.path, exc)
                report.errors += 1
                bar.update()
                continue
            row = known.get(key)
            if row is not None and row["sha256"] == digest:
                self.db.call(_touch, key, seen.size, seen.mtime_ns)
                report.touched += 1
                bar.update()
                continue
            nodes, error = self._chunks(seen)
            report.errors += error is not None
            if row is None:
                report.added += 1
            else:
                report.changed += 1
            batch.append((seen, digest, nodes, error))
            report.embedded_files.append(key)
            pending_chunks += len(nodes or [])
            if pending_chunks >= EMBED_BATCH_CHUNKS:
                report.chunks_embedded += self._store(batch)
                bar.update(len(batch))
                batch, pending_chunks = [], 0
        if batch:
            report.chunks_embedded += self._store(batch)
            bar.update(len(batch))
        bar.close()
        if gone:
            self.db.call(_forget, gone)
            report.removed = len(gone)
        report.generation = self.db.call(_bump if report.modified else _generation)
        report.seconds = time.monotonic() - started
        log.info("index: %s", report.summary())
        return report

    def _chunks(self, seen: Seen) -> tuple[list[TextNode] | None, str | None]:
        try:
            text = extract_text(seen.path)
        except Exception as exc:  # pypdf raises many kinds; one bad file must not stop a pass
            log.warning("cannot extract text from %s: %s", seen.path, exc)
            return None, f"{type(exc).__name__}: {exc}"[:300]
        if not text.strip():
            return [], None
        doc = Document(
            text=text,
            metadata={"file_name": seen.path.name, "path": str(seen.path)},
            excluded_embed_metadata_keys=["path"],
            excluded_llm_metadata_keys=["path"],
        )
        return list(self.splitter.get_nodes_from_documents([doc])), None  # type: ignore[arg-type]

    def _store(self, batch: list[tuple[Seen, str, list[TextNode] | None, str | None]]) -> int:
        texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for _, _, nodes, _ in batch for n in nodes or []]
        vectors = self.embedder.embed(texts)
        rows, at = [], 0
        for seen, digest, nodes, error in batch:
            chunks = [(n.get_content(metadata_mode=MetadataMode.NONE), vectors[at + i]) for i, n in
                      enumerate(nodes or [])]
            at += len(chunks)
            rows.append((seen, digest, chunks, error))
        self.db.call(_write, rows)
        return len(texts)


# --- manifest access (run on the database thread) ---------------------------


def _manifest(conn: sqlite3.Connection) -> dict[str, sqlite3.Row]:
    return {r["path"]: r for r in conn.execute("SELECT path, root, size, mtime_ns, sha256 FROM files")}


def _touch(conn: sqlite3.Connection, path: str, size: int, mtime_ns: int) -> None:
    conn.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path))


def _write(conn: sqlite3.Connection, rows: list[tuple[Seen, str, list[tuple[str, np.ndarray]], str | None]]) -> None:
    now = time.time()
    with transaction(conn):
        for seen, digest, chunks, error in rows:
            key = str(seen.path)
            conn.execute("DELETE FROM chunks WHERE path = ?", (key,))
            conn.execute(
                "INSERT INTO files (path, root, name, size, mtime_ns, sha256, chunks, error, indexed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET root = excluded.root, "
                "name = excluded.name, size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "sha256 = excluded.sha256, chunks = excluded.chunks, error = excluded.error, "
                "indexed_at = excluded.indexed_at",
                (key, str(seen.root), seen.path.name, seen.size, seen.mtime_ns, digest, len(chunks), error, now),
            )
            conn.executemany(
                "INSERT INTO chunks (path, seq, text, embedding) VALUES (?, ?, ?, ?)",
                [(key, i, text, np.asarray(v, dtype=np.float32).tobytes()) for i, (text, v) in enumerate(chunks)],
            )


def _forget(conn: sqlite3.Connection, paths: list[str]) -> None:
    with transaction(conn):
        conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])


def _generation(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def _bump(conn: sqlite3.Connection) -> int:
    with transaction(conn):
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        return _generation(conn)


@dataclass
class _Snapshot:
    generation: int
    files: list[sqlite3.Row]
    chunks: list[sqlite3.Row]


def _snapshot(conn: sqlite3.Connection) -> _Snapshot:
    conn.execute("BEGIN")  # one read transaction: files and chunks of the same generation
    try:
        return _Snapshot(
            _generation(conn),
            conn.execute("SELECT path, root, name, chunks FROM files").fetchall(),
            conn.execute("SELECT id, path, text, embedding FROM chunks ORDER BY id").fetchall(),
        )
    finally:
        conn.execute("COMMIT")


# ---------------------------------------------------------------------------
# searching
# ---------------------------------------------------------------------------


@dataclass
class FileHit:
    """One file that matches a query."""

    path: Path
    root: Path
    score: float
    match: str  # "name", "fuzzy name" or "content"
    snippet: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    def public(self) -> catalogue.FileHit:
        return catalogue.FileHit(
            name=self.name,
            path=str(self.path.relative_to(self.root)) if self.path.is_relative_to(self.root) else self.name,
            folder=self.root.name,
            score=round(self.score, 3),
            match=self.match,
            snippet=self.snippet,
        )


@dataclass
class _View:
    generation: int = -1
    index: VectorStoreIndex | None = None
    files: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # path -> (path, root)
    stems: dict[str, str] = field(default_factory=dict)  # path -> normalized stem
    names: dict[str, str] = field(default_factory=dict)  # path -> normalized name
    chunks: int = 0


def normalize_name(text: str) -> str:
    return " ".join(re.sub(r"[_\-.]+", " ", text.lower()).split())


class FileSearch:
    """The searchable view of the manifest; rebuilt whenever its generation changes."""

    def __init__(self, db: Database, embedder: MiniLMEmbedding) -> None:
        self.db, self.embedder = db, embedder
        self._view = _View()
        self._rebuild = threading.Lock()

    @property
    def files(self) -> int:
        return len(self._view.files)

    @property
    def chunks(self) -> int:
        return self._view.chunks

    def refresh(self) -> bool:
        """Rebuild the view when the manifest changed; True when it did (blocking: call off the loop)."""
        if self.db.call(_generation) == self._view.generation:
            return False
        with self._rebuild:
            snap = self.db.call(_snapshot)
            if snap.generation == self._view.generation:
                return False
            started = time.monotonic()
            self._view = self._build(snap)
            log.info(
                "file index loaded: %d files, %d passages (generation %d)",
                len(snap.files), len(snap.chunks), snap.generation,
                extra={"ms": round((time.monotonic() - started) * 1000)},
            )
            return True

    def _build(self, snap: _Snapshot) -> _View:
        view = _View(generation=snap.generation, chunks=len(snap.chunks))
        for row in snap.files:
            path = Path(row["path"])
            view.files[row["path"]] = (path, Path(row["root"]))
            view.stems[row["path"]] = normalize_name(path.stem)
            view.names[row["path"]] = normalize_name(path.name)
        if snap.chunks:
            names = {row["path"]: row["name"] for row in snap.files}
            nodes = [
                TextNode(
                    id_=str(row["id"]),
                    text=row["text"],
                    embedding=np.frombuffer(row["embedding"], dtype=np.float32).tolist(),
                    metadata={"path": row["path"], "file_name": names.get(row["path"], "")},
                )
                for row in snap.chunks
            ]
            store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(DIMENSION))
            view.index = VectorStoreIndex(
                nodes,
                storage_context=StorageContext.from_defaults(vector_store=store),
                embed_model=self.embedder,
            )
        return view

    def search(self, query: str, k: int = 3) -> list[FileHit]:
        """The ``k`` best files for ``query`` by name and by content (blocking: call off the loop)."""
        self.refresh()
        view = self._view
        best: dict[str, FileHit] = {}

        def offer(key: str, score: float, match: str, snippet: str = "") -> None:
            if key not in view.files:
                return
            if key not in best or score > best[key].score:
                path, root = view.files[key]
                best[key] = FileHit(path, root, score, match, snippet)

        wanted = normalize_name(query)
        for key in view.files:
            if wanted and wanted in (view.stems[key], view.names[key]):
                offer(key, 1.0, "name")
        choices = {key: stem for key, stem in view.stems.items() if len(stem) >= 3}
        for _, score, key in process.extract(
            wanted, choices, scorer=fuzz.WRatio, score_cutoff=FUZZY_CUTOFF, limit=k * 2
        ):
            offer(key, 0.9 * score / 100, "fuzzy name")
        if view.index is not None:
            retriever = view.index.as_retriever(similarity_top_k=k * 4)
            for hit in retriever.retrieve(query):
                if hit.score is not None and hit.score >= MIN_CONTENT_SCORE:
                    text = hit.node.get_content(metadata_mode=MetadataMode.NONE)
                    offer(str(hit.node.metadata.get("path", "")), float(hit.score), "content", _snippet(text))
        return sorted(best.values(), key=lambda h: h.score, reverse=True)[:k]


def _snippet(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
