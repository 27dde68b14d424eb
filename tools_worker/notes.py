"""Notes by voice: take, list, read, delete and search a user's notes."""

from __future__ import annotations

from pydantic import Field, model_validator

from voicefleet.messages import ToolCall

from .book import Book, MaybeRecordId
from .phrases import clip, count, join
from .records import Record
from .registry import Outcome, Tool, ToolArgs

SPOKEN_ITEMS = 5  # a longer list is tiring to hear; data still carries all of them


class AddNote(ToolArgs):
    text: str = Field(min_length=1, max_length=4000, description="what the note says")


class ReadNote(ToolArgs):
    id: MaybeRecordId = Field(None, description="the note's number")
    query: str | None = Field(None, description="words from the note (instead of its number)")


class DeleteNote(ReadNote):
    @model_validator(mode="after")
    def _one_of(self) -> DeleteNote:
        if self.id is None and not self.query:
            raise ValueError("Which note should I delete? Give its number or some words from it.")
        return self


class SearchNotes(ToolArgs):
    query: str = Field(min_length=1, description="words to look for")


def _say(record: Record) -> str:
    return f"note {record.num}, {clip(record.text)}"


class NotesTools:
    """Handlers of the ``notes.*`` tools."""

    def __init__(self, book: Book) -> None:
        self.book = book

    async def add(self, call: ToolCall, args: AddNote) -> Outcome:
        record, _ = await self.book.add(call.user, args.text, call.call_id)
        return Outcome(True, f"Noted. That's note {record.num}.", {"note": record.public()})

    async def list_all(self, call: ToolCall, args: ToolArgs) -> Outcome:
        notes = await self.book.all(call.user)
        data = {"notes": [n.public() for n in notes]}
        if not notes:
            return Outcome(True, "You don't have any notes yet.", data)
        latest = notes[-SPOKEN_ITEMS:]
        lead = f"You have {count(len(notes), 'note')}"
        if len(notes) > SPOKEN_ITEMS:
            lead += f". The latest {len(latest)} are"
        return Outcome(True, f"{lead}: {join([_say(n) for n in latest])}.", data)

    async def read(self, call: ToolCall, args: ReadNote) -> Outcome:
        if args.id is not None:
            note = await self.book.get(call.user, args.id)
            return Outcome(True, f"Note {note.num} says: {note.text}", {"note": note.public()})
        if args.query:
            matches = await self.book.search(call.user, args.query)
            if not matches:
                return Outcome(False, f"I couldn't find a note about {clip(args.query, 60)}.", {"notes": []})
            note = matches[0].item
            return Outcome(True, f"Note {note.num} says: {note.text}", {"note": note.public()})
        notes = await self.book.all(call.user)
        if not notes:
            return Outcome(True, "You don't have any notes yet.", {"notes": []})
        note = notes[-1]
        return Outcome(True, f"Your latest note, number {note.num}, says: {note.text}", {"note": note.public()})

    async def delete(self, call: ToolCall, args: DeleteNote) -> Outcome:
        target = await self.book.find(call.user, args.id, args.query, "delete")
        removed = await self.book.delete(call.user, target.num)
        return Outcome(True, f"I deleted {_say(removed)}.", {"deleted": removed.public()})

    async def search(self, call: ToolCall, args: SearchNotes) -> Outcome:
        matches = await self.book.search(call.user, args.query)
        data = {"notes": [{**m.item.public(), "score": round(m.score, 3)} for m in matches]}
        if not matches:
            return Outcome(True, f"I couldn't find a note about {clip(args.query, 60)}.", data)
        spoken = join([_say(m.item) for m in matches[:3]])
        return Outcome(True, f"I found {count(len(matches), 'note')}: {spoken}.", data)

    def tools(self) -> list[Tool]:
        return [
            Tool("notes.add", "Take a note for the user.", AddNote, self.add, mutates=True),
            Tool("notes.list", "List the user's notes.", ToolArgs, self.list_all),
            Tool("notes.read", "Read a note by number or words (latest when none given).", ReadNote, self.read),
            Tool("notes.delete", "Delete a note by number or words.", DeleteNote, self.delete, mutates=True),
            Tool("notes.search", "Find notes about something.", SearchNotes, self.search),
        ]
