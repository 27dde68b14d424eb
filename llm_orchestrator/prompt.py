"""The prompt of a turn: persona, the user's memory, recent history, the new message.

The system prompt comes first and changes rarely (persona, the session's
language, then memory), so llama.cpp can reuse its cached prefix from one
turn to the next.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from .history import HistoryEntry

MAX_MEMORY_ITEMS = 20
MAX_MEMORY_CHARS = 1200
MAX_USER_CHARS = 4000

#: Language names for the system prompt, by the first part of a BCP 47 tag.
LANGUAGES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "nl": "Dutch",
             "pt": "Portuguese"}  # fmt: skip

# Requests that deserve more than a couple of sentences.
_LONG = re.compile(
    r"\b(?:long|longer|lengthy|in detail|detailed|details|in depth|step by step|stor(?:y|ies)|poem|"
    r"elaborate|explain more|tell me more|everything|all about|histoire|longue|en détail)\b",
    re.IGNORECASE,
)


def wants_long(user_text: str) -> bool:
    """Did the user ask for a long answer (a story, details, step by step)?"""
    return _LONG.search(user_text) is not None


def language_name(language: str) -> str:
    """The language's English name ("fr-FR": French); "" when unknown or not said."""
    return LANGUAGES.get(language.split("-")[0].split("_")[0].lower(), "")


class PromptBuilder:
    """Builds chat messages from the persona, memory and history."""

    def __init__(self, persona: str) -> None:
        self.persona = persona.strip()

    def system(self, memory: Sequence[str] = (), language: str = "") -> str:
        text = self.persona
        name = language_name(language)
        if name and name != "English":
            # Only where needed: told "answer in English", a small model starts talking about English.
            text += f"\nAlways answer in {name}."
        if not memory:
            return text
        lines, size = [], 0
        for item in list(memory)[:MAX_MEMORY_ITEMS]:
            size += len(item)
            if size > MAX_MEMORY_CHARS:
                break
            lines.append(f"- {item}")
        return f"{text}\n\nWhat the user asked you to remember:\n" + "\n".join(lines)

    def messages(self, system: str, history: Sequence[HistoryEntry], user_text: str) -> list[ChatMessage]:
        messages = [ChatMessage(role=MessageRole.SYSTEM, content=system)]
        for entry in history:
            role = MessageRole.USER if entry.role == "user" else MessageRole.ASSISTANT
            messages.append(ChatMessage(role=role, content=entry.content))
        messages.append(ChatMessage(role=MessageRole.USER, content=user_text[:MAX_USER_CHARS]))
        return messages

    def retry(self, system: str, user_text: str) -> list[ChatMessage]:
        """The prompt for a second try after a bad first answer: the question alone.

        Without the history: a small model copies from it (that is how a
        session gets stuck on one answer), and most questions stand alone.
        No corrective instruction either: measured on SmolLM2-135M over ten
        echo-prone sentences, three seeds each, "(Do not say my words back to
        me. Answer in your own words.)" after the question cut rejected
        answers from 10 to 4 of 30 but made 10 of 30 talk about the
        instruction ("I will use my own words."); in the system prompt, 16
        of 30 were rejected. The system prompt stays first, so its cache holds.
        """
        return self.messages(system, [], user_text)

    def warm_messages(self) -> list[ChatMessage]:
        """A prompt that starts like every real one, to prime the model's cache at start-up."""
        return self.messages(self.system(), [], "Hello")
