"""The conversation of one session, kept in Redis so that any orchestrator can answer it.

Entries are JSON objects in the list ``keys.history(sid)``:
``{"role": "user"|"assistant", "content": ..., "turn_id": ..., "at": epoch,
"interrupted": bool, "unheard": bool}``. The list is capped and expires a while after the last
turn. What goes into a prompt is a suffix of it, cut to a number of exchanges
and an approximate token budget.

An exchange cancelled by the person speaking again before any of its reply was
heard (``unheard``) is not kept as such once the next turn comes: that turn
takes its words (:meth:`History.take_unheard`) and is answered as one request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from voicefleet.bus import Bus
from voicefleet.messages import now

log = logging.getLogger(__name__)

#: Entries kept in Redis beyond what prompts use (for clients that show the conversation).
MIN_KEPT = 40


def approx_tokens(text: str) -> int:
    """About four characters per token for English: good enough for a budget."""
    return len(text) // 4 + 1


@dataclass
class HistoryEntry:
    """One message of the conversation."""

    role: str
    content: str
    turn_id: str = ""
    at: float = 0.0
    interrupted: bool = False
    n: int = 0  # user messages: 1, 2, 3... in the session (0: not numbered)
    #: The tool that answered this exchange (a command), "" for the model's own replies.
    tool: str = ""
    #: An assistant entry: the person spoke again before any of this reply was heard (see take_unheard).
    unheard: bool = False

    @classmethod
    def from_json(cls, raw: bytes | str) -> HistoryEntry | None:
        try:
            data: dict[str, Any] = json.loads(raw)
            return cls(
                role=str(data["role"]),
                content=str(data.get("content", "")),
                turn_id=str(data.get("turn_id", "")),
                at=float(data.get("at", 0.0)),
                interrupted=bool(data.get("interrupted", False)),
                n=int(data.get("n", 0)),
                tool=str(data.get("tool", "")),
                unheard=bool(data.get("unheard", False)),
            )
        except (ValueError, KeyError, TypeError):
            return None


def trim(
    entries: list[HistoryEntry],
    max_turns: int,
    token_budget: int,
    count: Callable[[str], int] = approx_tokens,
) -> list[HistoryEntry]:
    """The newest entries that fit ``max_turns`` user messages and ``token_budget`` tokens.

    Old exchanges leave in blocks of half the window, not one per turn: the
    prompt after the system prompt then stays the same for several turns, so
    llama.cpp reuses its cache instead of reading the whole history again.

    Exchanges answered by a tool (commands) stay out: a small model copies
    what it sees, and "Noted. That's note 5." in its history teaches it to
    claim it took a note when no tool ran.
    """
    entries = _from_block_start(entries, max_turns)
    kept: list[HistoryEntry] = []
    tokens = turns = 0
    for entry in reversed(entries):
        if entry.role not in ("user", "assistant") or not entry.content.strip() or entry.tool:
            continue  # e.g. a reply cancelled before anything was said, or a command
        cost = count(entry.content) + 4  # role markers
        if tokens + cost > token_budget or turns >= max_turns:
            break  # (an answer whose question did not fit goes too)
        if entry.role == "user":
            turns += 1
        kept.append(entry)
        tokens += cost
    kept.reverse()
    return kept


def _from_block_start(entries: list[HistoryEntry], max_turns: int) -> list[HistoryEntry]:
    numbers = [e.n for e in entries if e.role == "user" and e.n]
    if not numbers or max_turns <= 0:
        return entries
    block = max(1, max_turns // 2)
    first = max(numbers) - max_turns + 1  # a sliding window would start here...
    if first <= 1:
        return entries
    first = -(-(first - 1) // block) * block + 1  # ...a block window at the next block boundary
    for i, entry in enumerate(entries):
        if entry.role == "user" and entry.n >= first:
            return entries[i:]
    return entries


class History:
    """Reads and appends a session's conversation."""

    def __init__(self, bus: Bus, max_turns: int, token_budget: int, ttl_s: int) -> None:
        self.bus = bus
        self.max_turns = max_turns
        self.token_budget = token_budget
        self.ttl_s = ttl_s

    async def entries(self, session_id: str) -> list[HistoryEntry]:
        """Every stored entry, oldest first."""
        raw = await self.bus.redis.lrange(self.bus.keys.history(session_id), 0, -1)
        parsed = [HistoryEntry.from_json(item) for item in raw]
        return [e for e in parsed if e is not None]

    async def recent(self, session_id: str) -> list[HistoryEntry]:
        """What fits in a prompt."""
        if self.max_turns == 0 or self.token_budget == 0:
            return []
        # Read only the tail: each exchange is two entries, one more for announcements.
        raw = await self.bus.redis.lrange(self.bus.keys.history(session_id), -3 * self.max_turns, -1)
        parsed = [HistoryEntry.from_json(item) for item in raw]
        return trim([e for e in parsed if e is not None], self.max_turns, self.token_budget)

    async def take_unheard(self, session_id: str, turn_id: str, max_age_s: float) -> HistoryEntry | None:
        """The user entry of the session's last exchange if its reply was not heard; removed from the history.

        That exchange was cancelled because the person went on speaking (the
        STT worker's ``barge_in_unheard``): the turn ``turn_id`` now being
        answered is the rest of the same request. Not when the exchange is
        ``max_age_s`` old or more, nor when it is ``turn_id`` itself (a turn
        redelivered after its worker died).
        """
        key = self.bus.keys.history(session_id)
        raw = await self.bus.redis.lrange(key, -2, -1)
        if len(raw) < 2:
            return None
        question, answer = HistoryEntry.from_json(raw[0]), HistoryEntry.from_json(raw[1])
        if (
            question is None
            or answer is None
            or question.role != "user"
            or answer.role != "assistant"
            or not answer.unheard
            or question.turn_id != answer.turn_id
            or question.turn_id == turn_id
            or now() - answer.at >= max_age_s
        ):
            return None
        pipe = self.bus.redis.pipeline(transaction=True)
        pipe.lrem(key, -1, raw[1])
        pipe.lrem(key, -1, raw[0])
        removed = await pipe.execute()
        if removed[0] + removed[1] < 2:
            return None  # another worker took it
        return question

    async def append(self, session_id: str, *entries: HistoryEntry) -> None:
        key = self.bus.keys.history(session_id)
        keep = max(MIN_KEPT, 3 * self.max_turns)
        if any(e.role == "user" for e in entries):
            # A session's turns are answered one at a time, so reading the last number is safe.
            tail = [HistoryEntry.from_json(raw) for raw in await self.bus.redis.lrange(key, -6, -1)]
            last = max((e.n for e in tail if e is not None), default=0)
            for entry in entries:
                if entry.role == "user":
                    last += 1
                    entry.n = last
        pipe = self.bus.redis.pipeline(transaction=True)
        for entry in entries:
            entry.at = entry.at or now()
            pipe.rpush(key, json.dumps(asdict(entry), ensure_ascii=False).encode())
        pipe.ltrim(key, -keep, -1)
        pipe.expire(key, self.ttl_s)
        await pipe.execute()
