"""The prompt of a turn: persona, the user's memory, recent history, the new message.

The system prompt comes first and changes rarely (persona, then memory), so
llama.cpp can reuse its cached prefix from one turn to the next.
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from .history import HistoryEntry

MAX_MEMORY_ITEMS = 20
MAX_MEMORY_CHARS = 1200
MAX_USER_CHARS = 4000


class PromptBuilder:
    """Builds chat messages from the persona, memory and history."""

    def __init__(self, persona: str) -> None:
        self.persona = persona.strip()

    def system(self, memory: Sequence[str] = ()) -> str:
        if not memory:
            return self.persona
        lines, size = [], 0
        for item in list(memory)[:MAX_MEMORY_ITEMS]:
            size += len(item)
            if size > MAX_MEMORY_CHARS:
                break
            lines.append(f"- {item}")
        return f"{self.persona}\n\nWhat the user asked you to remember:\n" + "\n".join(lines)

    def messages(self, system: str, history: Sequence[HistoryEntry], user_text: str) -> list[ChatMessage]:
        messages = [ChatMessage(role=MessageRole.SYSTEM, content=system)]
        for entry in history:
            role = MessageRole.USER if entry.role == "user" else MessageRole.ASSISTANT
            messages.append(ChatMessage(role=role, content=entry.content))
        messages.append(ChatMessage(role=MessageRole.USER, content=user_text[:MAX_USER_CHARS]))
        return messages

    def warm_messages(self) -> list[ChatMessage]:
        """A prompt that starts like every real one, to prime the model's cache at start-up."""
        return self.messages(self.system(), [], "Hello")
