"""File search on a real index: 200 generated files, incremental re-indexing, names, PDF, path safety."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools_corpus import Doc, write_corpus, write_pdf
from tools_harness import call, indexed, running, tools_settings

from tools_worker.embeddings import MiniLMEmbedding, load_embedder
from tools_worker.file_index import FileSearch, Indexer, open_index_db
from tools_worker.paths import PathRefused, SafePaths
from tools_worker.store import Database
from voicefleet.bus import Bus
from voicefleet.settings import BusSettings

pytestmark = [pytest.mark.models, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedding:
    return load_embedder()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Doc]]:
    folder = tmp_path_factory.mktemp("docs")
    docs = write_corpus(folder, 200)
    (folder / "shopping-list.md").write_text("- apples\n- rice\n", encoding="utf-8")
    write_pdf(folder / "boiler-manual.pdf", "Warranty card for the Zephyr 3000 heat pump, serial number 4471.")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8 not text")  # unsupported: ignored
    return folder, docs


@pytest.fixture
def index_db(tmp_path: Path) -> Iterator[Database]:
    db = open_index_db(tmp_path / "file_index.sqlite")
    yield db
    db.close()


def _chunk_ids(db_path: Path, path: Path) -> list[int]:
    with sqlite3.connect(db_path) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM chunks WHERE path = ? ORDER BY id", (str(path),))]


def test_index_200_files_then_only_changes(
    corpus: tuple[Path, list[Doc]], index_db: Database, embedder: MiniLMEmbedding, tmp_path: Path
) -> None:
    folder, docs = corpus
    indexer = Indexer(index_db, embedder, SafePaths([folder]), tmp_path / "lock")
    first = indexer.sync()
    assert first is not None
    assert (first.added, first.skipped, first.errors) == (202, 0, 0)  # 200 docs, the list, the PDF

    search = FileSearch(index_db, embedder)
    for doc in docs[::10]:  # one query in ten, every topic represented
        hits = search.search(doc.query, 3)
        assert doc.path.resolve() in [h.path for h in hits], (doc.query, [h.name for h in hits])
    pdf = search.search("heat pump warranty", 3)
    assert pdf[0].name == "boiler-manual.pdf" and pdf[0].match == "content"
    assert search.search("shopping list", 3)[0].match == "name"
    fuzzy = search.search("shoping lst", 3)
    assert fuzzy[0].name == "shopping-list.md" and fuzzy[0].match == "fuzzy name"

    # Now: one file rewritten, one only touched, one deleted.
    changed, touched, removed, kept = docs[1].path, docs[2].path, docs[3].path, docs[4].path
    kept_ids = _chunk_ids(index_db.path, kept.resolve())
    changed.write_text("The llama farm in the Andes needs a new fence before winter.", encoding="utf-8")
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    removed.unlink()

    second = indexer.sync()
    assert second is not None
    assert (second.changed, second.touched, second.removed, second.added) == (1, 1, 1, 0)
    assert second.embedded_files == [str(changed.resolve())]
    assert _chunk_ids(index_db.path, kept.resolve()) == kept_ids  # untouched rows, not re-embedded

    hits = search.search("fence for the llamas", 3)
    assert hits[0].path == changed.resolve()
    assert removed.resolve() not in [h.path for h in search.search(docs[3].query, 3)]
    third = indexer.sync()
    assert third is not None and not third.modified and third.embedded_files == []


def test_paths_cannot_leave_the_search_folders(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "ok.txt").write_text("fine")
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    (folder / "link-out.txt").symlink_to(outside)
    (folder / "link-in.txt").symlink_to(folder / "sub" / "ok.txt")
    safe = SafePaths([folder])

    assert safe.resolve("sub/ok.txt") == (folder / "sub" / "ok.txt").resolve()
    assert safe.resolve("link-in.txt") == (folder / "sub" / "ok.txt").resolve()
    for attempt in ("../secret.txt", "sub/../../secret.txt", "..\\secret.txt", str(outside), "/etc/passwd",
                    "~/secret.txt", "C:\\Windows\\win.ini", "link-out.txt", "sub/\x00ok.txt"):
        with pytest.raises(PathRefused):
            safe.resolve(attempt)
    with pytest.raises(FileNotFoundError):
        safe.resolve("sub/missing.txt")
    assert not safe.contains(folder / "link-out.txt")


async def test_files_search_through_the_worker(
    bus: Bus, bus_settings: BusSettings, tmp_path: Path, embedder: MiniLMEmbedding
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "orchids.md").write_text("Repot the orchids every two years in bark, never in soil.")
    (folder / "taxes-2024.txt").write_text("Tax return checklist: receipts, pension statement, bank interest.")
    outside = tmp_path / "outside.txt"
    outside.write_text("The password for the vault is zebra-umbrella.")
    (folder / "vault.txt").symlink_to(outside)

    settings = tools_settings(bus_settings, tmp_path / "data", search_dirs=[folder])
    async with running(settings, embedder) as service:
        await indexed(service, 2)
        found = await call(bus, "files.search", {"query": "what soil do orchids need"})
        assert found.ok and found.data["results"][0]["name"] == "orchids.md"
        assert found.text.startswith("I found") and "orchids.md" in found.text
        assert found.data["untrusted"] is True

        by_name = await call(bus, "files.search", {"query": "taxes 2024"})
        assert by_name.data["results"][0] == {**by_name.data["results"][0], "name": "taxes-2024.txt",
                                               "match": "name"}

        # The symlink leading outside was never indexed, and cannot be opened by name.
        leaked = await call(bus, "files.search", {"query": "vault password zebra umbrella"})
        assert "vault.txt" not in [r["name"] for r in leaked.data["results"]]
        for attempt in ("../outside.txt", str(outside), "./vault.txt", "/etc/passwd"):
            refused = await call(bus, "files.search", {"query": attempt})
            assert not refused.ok and refused.data["error"] == "refused", attempt
        direct = await call(bus, "files.search", {"query": "./orchids.md"})
        assert direct.ok and direct.data["results"][0]["name"] == "orchids.md"
