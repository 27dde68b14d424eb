"""Long-term memory: facts about the user the assistant should keep ("I'm vegetarian")."""

from __future__ import annotations

from pydantic import Field, model_validator

from voicefleet.messages import ToolCall

from .book import Book, MaybeRecordId, RecordId
from .matching import keyword_score
from .phrases import clip, count, join
from .registry import Outcome, Tool, ToolArgs


class Remember(ToolArgs):
    text: str = Field(min_length=1, max_length=1000, description="the fact to remember")


class UpdateMemory(ToolArgs):
    id: RecordId
    text: str = Field(min_length=1, max_length=1000, description="the corrected fact")


class Forget(ToolArgs):
    id: MaybeRecordId = Field(None, description="the fact's number")
    query: str | None = Field(None, description="words from the fact (instead of its number)")

    @model_validator(mode="after")
    def _one_of(self) -> Forget:
        if self.id is None and not self.query:
            raise ValueError("What should I forget? Give its number or some words from it.")
        return self


class MemoryTools:
    """Handlers of the ``memory.*`` tools."""

    def __init__(self, book: Book) -> None:
        self.book = book

    async def remember(self, call: ToolCall, args: Remember) -> Outcome:
        for known in await self.book.all(call.user):
            if known.text.casefold() == args.text.casefold() or (
                keyword_score(args.text, known.text) == 1.0 and keyword_score(known.text, args.text) == 1.0
            ):
                return Outcome(True, "I already know that.", {"memory": known.public(), "duplicate": True})
        record, _ = await self.book.add(call.user, args.text, call.call_id)
        return Outcome(True, "Okay, I'll remember that.", {"memory": record.public()})

    async def list_all(self, call: ToolCall, args: ToolArgs) -> Outcome:
        facts = await self.book.all(call.user)
        data = {"memories": [f.public() for f in facts]}
        if not facts:
            return Outcome(True, "I don't remember anything about you yet.", data)
        spoken = join([f"{f.num}, {clip(f.text)}" for f in facts[:10]])
        return Outcome(True, f"I remember {count(len(facts), 'thing')}: {spoken}.", data)

    async def update(self, call: ToolCall, args: UpdateMemory) -> Outcome:
        record = await self.book.update(call.user, args.id, args.text)
        return Outcome(True, f"Updated. I now remember: {clip(record.text)}.", {"memory": record.public()})

    async def forget(self, call: ToolCall, args: Forget) -> Outcome:
        target = await self.book.find(call.user, args.id, args.query, "forget")
        removed = await self.book.delete(call.user, target.num)
        return Outcome(True, f"Okay, I've forgotten: {clip(removed.text)}", {"forgotten": removed.public()})

    def tools(self) -> list[Tool]:
        return [
            Tool("memory.remember", "Remember a fact about the user.", Remember, self.remember, mutates=True),
            Tool("memory.list", "List what is remembered about the user.", ToolArgs, self.list_all),
            Tool("memory.update", "Correct a remembered fact by number.", UpdateMemory, self.update,
                 mutates=True),
            Tool("memory.forget", "Forget a fact by number or words.", Forget, self.forget, mutates=True),
        ]
