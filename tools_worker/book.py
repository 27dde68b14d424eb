"""A user's numbered texts of one kind (notes, memories), found by number or by words."""

from __future__ import annotations

import asyncio

import numpy as np

from . import records
from .embeddings import MiniLMEmbedding
from .matching import Scored, clear_winner, rank
from .phrases import clip, join
from .records import Kind, Record
from .registry import ToolError
from .store import Database


class Book:
    """Notes or memories of every user in one table, each call scoped to one user."""

    def __init__(self, db: Database, kind: Kind, noun: str, embedder: MiniLMEmbedding | None) -> None:
        self.db, self.kind, self.noun, self.embedder = db, kind, noun, embedder

    async def vector(self, text: str) -> np.ndarray | None:
        if self.embedder is None:
            return None
        vectors = await asyncio.to_thread(self.embedder.embed, [text])
        return np.asarray(vectors[0])

    async def add(self, user: str, text: str, call_id: str) -> tuple[Record, bool]:
        vector = await self.vector(text)
        return await self.db.run(records.add, self.kind, user, text, call_id, vector)

    async def all(self, user: str) -> list[Record]:
        return await self.db.run(records.all_of, self.kind, user)

    async def get(self, user: str, num: int) -> Record:
        found = await self.db.run(records.get, self.kind, user, num)
        if found is None:
            raise ToolError(f"You don't have a {self.noun} number {num}.", "not_found")
        return found

    async def search(self, user: str, query: str) -> list[Scored[Record]]:
        items = await self.all(user)
        if not items:
            return []
        return rank(query, items, await self.vector(query))

    async def find(self, user: str, num: int | None, query: str | None, verb: str) -> Record:
        """The one record meant by a number or by words; asks back when it is ambiguous."""
        if num is not None:
            return await self.get(user, num)
        assert query is not None
        matches = await self.search(user, query)
        if not matches:
            raise ToolError(f"I couldn't find a {self.noun} about {clip(query, 60)}.", "not_found")
        winner = clear_winner(matches)
        if winner is None:
            options = matches[:3]
            listing = join([f"number {m.item.num}, {clip(m.item.text, 50)}" for m in options], "or")
            raise ToolError(
                f"I found {len(matches)} {self.noun}s like that: {listing}. Which one should I {verb}?",
                "ambiguous",
                [m.item.public().model_dump() for m in options],
            )
        return winner

    async def update(self, user: str, num: int, text: str) -> Record:
        found = await self.db.run(records.update, self.kind, user, num, text, await self.vector(text))
        if found is None:
            raise ToolError(f"You don't have a {self.noun} number {num}.", "not_found")
        return found

    async def delete(self, user: str, num: int) -> Record:
        found = await self.db.run(records.delete, self.kind, user, num)
        if found is None:
            raise ToolError(f"You don't have a {self.noun} number {num}.", "not_found")
        return found
