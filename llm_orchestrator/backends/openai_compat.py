"""Any OpenAI-compatible chat server: llama.cpp's server, vLLM, Ollama, a cloud endpoint.

Uses llama-index's ``OpenAILike`` with streaming. Its own retries are off:
the fallback chain decides when to retry and when to move on, and a voice
turn cannot wait through the OpenAI client's long backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms import LLM
from llama_index.core.tools import BaseTool
from llama_index.llms.openai_like import OpenAILike

from .base import Backend, Piece, ToolRequest

log = logging.getLogger(__name__)


class OpenAICompatBackend(Backend):
    """A chat model behind an OpenAI-compatible HTTP API, by base URL, model and key."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        context_window: int = 8192,
        max_tokens: int = 160,
        temperature: float = 0.6,
        top_p: float = 0.9,
        timeout_s: float = 30.0,
        function_calling: bool = False,
    ) -> None:
        self.base_url = base_url
        self._llm = OpenAILike(
            model=model,
            api_base=base_url,
            api_key=api_key,
            is_chat_model=True,
            is_function_calling_model=function_calling,
            context_window=context_window,
            max_tokens=max_tokens,
            temperature=temperature,
            additional_kwargs={"top_p": top_p},
            timeout=timeout_s,
            max_retries=0,
        )

    @property
    def llm(self) -> LLM:
        return self._llm

    @property
    def supports_tools(self) -> bool:
        return self._llm.is_function_calling_model

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        seed: int | None = None,
        tools: Sequence[BaseTool] | None = None,
        spoken: threading.Event | None = None,
    ) -> AsyncIterator[Piece]:
        options: dict[str, Any] = {"max_tokens": max_tokens}
        if seed is not None:
            options["seed"] = seed
        if tools and self.supports_tools:
            responses = await self._llm.astream_chat_with_tools(
                list(tools), chat_history=list(messages), allow_parallel_tool_calls=False, **options
            )
        else:
            responses = await self._llm.astream_chat(list(messages), **options)
        last: ChatResponse | None = None
        async with aclosing(responses) as stream:
            async for response in stream:
                last = response
                if response.delta:
                    yield Piece(text=response.delta)
        if tools and last is not None:
            calls = self._llm.get_tool_calls_from_response(last, error_on_no_tool_call=False)
            if calls:
                yield Piece(
                    tool_calls=[ToolRequest(c.tool_id, c.tool_name, dict(c.tool_kwargs)) for c in calls],
                    message=last.message,
                )

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "base_url": self.base_url, "model": self._llm.model}
