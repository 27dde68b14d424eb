"""Notes by voice: take, list, read, delete and search a user's notes."""

from __future__ import annotations

from voicefleet.catalogue import (
    DeleteNoteArgs,
    NoArgs,
    NoteDeleted,
    NoteList,
    NoteMatches,
    NoteRead,
    NoteSaved,
    QueryArgs,
    ReadNoteArgs,
    ScoredItem,
    TextArgs,
)
from voicefleet.messages import ToolCall

from .book import Book
from .phrases import clip, count, join
from .records import Record
from .registry import Outcome, Tool, ToolError, bind

SPOKEN_ITEMS = 5  # a longer list is tiring to hear; data still carries all of them


def _say(record: Record) -> str:
    return f"note {record.num}, {clip(record.text)}"


class NotesTools:
    """Handlers of the ``notes.*`` tools."""

    def __init__(self, book: Book) -> None:
        self.book = book

    async def add(self, call: ToolCall, args: TextArgs) -> Outcome:
        record, _ = await self.book.add(call.user, args.text, call.call_id)
        return Outcome(True, f"Noted. That's note {record.num}.", NoteSaved(note=record.public()))

    async def list_all(self, call: ToolCall, args: NoArgs) -> Outcome:
        notes = await self.book.all(call.user)
        data = NoteList(notes=[n.public() for n in notes])
        if not notes:
            return Outcome(True, "You don't have any notes yet.", data)
        latest = notes[-SPOKEN_ITEMS:]
        lead = f"You have {count(len(notes), 'note')}"
        if len(notes) > SPOKEN_ITEMS:
            lead += f". The latest {len(latest)} are"
        return Outcome(True, f"{lead}: {join([_say(n) for n in latest])}.", data)

    async def read(self, call: ToolCall, args: ReadNoteArgs) -> Outcome:
        if args.id is not None:
            note = await self.book.get(call.user, args.id)
            return Outcome(True, f"Note {note.num} says: {note.text}", NoteRead(note=note.public()))
        if args.query:
            matches = await self.book.search(call.user, args.query)
            if not matches:
                raise ToolError(f"I couldn't find a note about {clip(args.query, 60)}.", "not_found")
            note = matches[0].item
            return Outcome(True, f"Note {note.num} says: {note.text}", NoteRead(note=note.public()))
        notes = await self.book.all(call.user)
        if not notes:
            return Outcome(True, "You don't have any notes yet.", NoteRead(note=None))
        note = notes[-1]
        return Outcome(True, f"Your latest note, number {note.num}, says: {note.text}", NoteRead(note=note.public()))

    async def delete(self, call: ToolCall, args: DeleteNoteArgs) -> Outcome:
        target = await self.book.find(call.user, args.id, args.query, "delete")
        removed = await self.book.delete(call.user, target.num)
        return Outcome(True, f"I deleted {_say(removed)}.", NoteDeleted(deleted=removed.public()))

    async def search(self, call: ToolCall, args: QueryArgs) -> Outcome:
        matches = await self.book.search(call.user, args.query)
        data = NoteMatches(notes=[ScoredItem(**m.item.public().model_dump(), score=round(m.score, 3))
                                  for m in matches])
        if not matches:
            return Outcome(True, f"I couldn't find a note about {clip(args.query, 60)}.", data)
        spoken = join([_say(m.item) for m in matches[:3]])
        return Outcome(True, f"I found {count(len(matches), 'note')}: {spoken}.", data)

    def tools(self) -> list[Tool]:
        return [
            bind("notes.add", self.add),
            bind("notes.list", self.list_all),
            bind("notes.read", self.read),
            bind("notes.delete", self.delete),
            bind("notes.search", self.search),
        ]
