"""What every LLM backend offers the orchestrator: a cancellable stream of reply text.

A backend wraps one llama-index LLM (``backend.llm``), so the same model can
be used with the rest of llama-index; the orchestrator itself only needs
:meth:`Backend.stream`. Cancelling the task that iterates the stream (or
closing the stream) stops generation.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import LLM
from llama_index.core.tools import BaseTool


class BackendError(RuntimeError):
    """A backend could not answer (unreachable, broken, too slow)."""


@dataclass(frozen=True)
class ToolRequest:
    """A function call the model asked for."""

    call_id: str
    name: str
    args: dict[str, Any]


@dataclass
class Piece:
    """One step of a reply stream: new text, and on the last step maybe tool calls."""

    text: str = ""
    tool_calls: list[ToolRequest] = field(default_factory=list)
    #: The complete assistant message (set on the step that carries tool calls).
    message: ChatMessage | None = None


class Backend(ABC):
    """One way to run a chat model."""

    #: Short name used in settings, logs, notices and ``ReplyDone.backend``.
    name: str = "backend"

    @property
    @abstractmethod
    def llm(self) -> LLM:
        """The llama-index LLM behind this backend."""

    @property
    def supports_tools(self) -> bool:
        """True when the model can be offered functions (OpenAI tools)."""
        return False

    async def start(self, warm_messages: Sequence[ChatMessage]) -> None:  # noqa: B027 (optional hook)
        """Load the model and prime it with the system prompt (never on the event loop)."""

    @abstractmethod
    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        seed: int | None = None,
        tools: Sequence[BaseTool] | None = None,
        spoken: threading.Event | None = None,
    ) -> AsyncIterator[Piece]:
        """The reply, piece by piece, as the model writes it.

        ``spoken`` is set by the caller once the reply's first speakable chunk
        went to speech: a backend that serves several replies at once lets the
        ones nobody hears yet go first (the in-process llama.cpp does).
        """

    async def prefetch(self, messages: Sequence[ChatMessage]) -> None:  # noqa: B027 (optional hook)
        """Read a prompt the next turn will start with, so that it is cached by then (in-process models)."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the model or connections."""

    def describe(self) -> dict[str, Any]:
        """What the health key says about this backend."""
        return {"name": self.name}
