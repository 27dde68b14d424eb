"""``files.search``: find a file in the configured folders by content or by name."""

from __future__ import annotations

import asyncio

from voicefleet.catalogue import FileResults, QueryArgs
from voicefleet.messages import ToolCall

from .file_index import FileHit, FileSearch
from .paths import PathRefused, SafePaths
from .phrases import clip, count, join
from .registry import Outcome, Tool, bind, refuse


class FilesTools:
    """Handler of ``files.search``; ``search`` is None when no folder is configured."""

    def __init__(self, search: FileSearch | None, safe: SafePaths, top_k: int = 3) -> None:
        self.index, self.safe, self.top_k = search, safe, top_k
        self.indexing = False  # set by the worker while a background pass runs

    async def search(self, call: ToolCall, args: QueryArgs) -> Outcome:
        if self.index is None or not self.safe.roots:
            return refuse("File search isn't set up: no folders are configured.", "not_configured")
        if SafePaths.looks_like_path(args.query):
            return self._by_path(args.query)
        hits = await asyncio.to_thread(self.index.search, args.query, self.top_k)
        # File text is whatever landed in those folders: treat it like web text.
        data = FileResults(query=args.query, results=[h.public() for h in hits])
        if hits:
            return Outcome(True, _spoken(hits), data)
        if self.indexing and self.index.files == 0:
            return refuse("I'm still indexing your files; ask me again in a minute.", "indexing")
        return Outcome(True, f"I couldn't find a file about {clip(args.query, 60)}.", data)

    def _by_path(self, text: str) -> Outcome:
        try:
            path = self.safe.resolve(text)
        except PathRefused as exc:
            return refuse(str(exc), "refused")
        except FileNotFoundError:
            return refuse(f"I couldn't find {clip(text, 60)} in your folders.", "not_found")
        root = self.safe.root_of(path)
        assert root is not None  # resolve() checked it
        if path.is_dir():
            return refuse(f"{path.name or 'That'} is a folder; ask me for a file in it.", "folder")
        hit = FileHit(path, root, 1.0, "path")
        return Outcome(True, _spoken([hit]), FileResults(query=text, results=[hit.public()]))

    def tools(self) -> list[Tool]:
        return [bind("files.search", self.search)]


def _spoken(hits: list[FileHit]) -> str:
    if len(hits) == 1:
        return f"I found one file: {hits[0].name}."
    return f"I found {count(len(hits), 'file')}: {join([h.name for h in hits])}."
