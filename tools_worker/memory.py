"""Long-term memory: facts about the user the assistant should keep ("I'm vegetarian")."""

from __future__ import annotations

from voicefleet.catalogue import (
    ForgetArgs,
    MemoryForgotten,
    MemoryList,
    MemorySaved,
    NoArgs,
    RememberArgs,
    UpdateMemoryArgs,
)
from voicefleet.messages import ToolCall

from .book import Book
from .matching import keyword_score
from .phrases import clip, count, join
from .registry import Outcome, Tool, bind


class MemoryTools:
    """Handlers of the ``memory.*`` tools."""

    def __init__(self, book: Book) -> None:
        self.book = book

    async def remember(self, call: ToolCall, args: RememberArgs) -> Outcome:
        for known in await self.book.all(call.user):
            if known.text.casefold() == args.text.casefold() or (
                keyword_score(args.text, known.text) == 1.0 and keyword_score(known.text, args.text) == 1.0
            ):
                return Outcome(True, "I already know that.", MemorySaved(memory=known.public(), duplicate=True))
        record, _ = await self.book.add(call.user, args.text, call.call_id)
        return Outcome(True, "Okay, I'll remember that.", MemorySaved(memory=record.public()))

    async def list_all(self, call: ToolCall, args: NoArgs) -> Outcome:
        facts = await self.book.all(call.user)
        data = MemoryList(memories=[f.public() for f in facts])
        if not facts:
            return Outcome(True, "I don't remember anything about you yet.", data)
        spoken = join([f"{f.num}, {clip(f.text)}" for f in facts[:10]])
        return Outcome(True, f"I remember {count(len(facts), 'thing')}: {spoken}.", data)

    async def update(self, call: ToolCall, args: UpdateMemoryArgs) -> Outcome:
        record = await self.book.update(call.user, args.id, args.text)
        return Outcome(True, f"Updated. I now remember: {clip(record.text)}.", MemorySaved(memory=record.public()))

    async def forget(self, call: ToolCall, args: ForgetArgs) -> Outcome:
        target = await self.book.find(call.user, args.id, args.query, "forget")
        removed = await self.book.delete(call.user, target.num)
        return Outcome(True, f"Okay, I've forgotten: {clip(removed.text)}", MemoryForgotten(forgotten=removed.public()))

    def tools(self) -> list[Tool]:
        return [
            bind("memory.remember", self.remember),
            bind("memory.list", self.list_all),
            bind("memory.update", self.update),
            bind("memory.forget", self.forget),
        ]
