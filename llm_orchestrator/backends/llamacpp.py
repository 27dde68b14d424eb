"""llama.cpp in this process (llama-cpp-python), as a llama-index LLM.

The model lives on one dedicated thread: loading, warming and every
generation run there, one at a time, because a ``Llama`` object holds one KV
cache and cannot serve two streams at once. Queued requests wait their turn
without blocking the event loop. Tokens travel back to the loop through an
``asyncio.Queue``; a cancel flag, checked before every token, stops a
generation within one token of a barge-in.

llama-cpp-python reuses the longest common prefix of consecutive prompts, so
keeping the system prompt first and stable (and warming it at start-up)
makes the first token come fast.

llama-index's own LlamaCPP integration pulls in dependencies we do not want
and formats prompts itself; this class uses the model's own chat template
through ``create_chat_completion``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, contextmanager
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms import LLM, CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.tools import BaseTool
from pydantic import PrivateAttr

from . import tool_grammar
from .base import Backend, BackendError, Piece, ToolRequest

log = logging.getLogger(__name__)

_END = object()


@contextmanager
def weight_repack_as(enabled: bool) -> Iterator[None]:
    """Load a model with llama.cpp's weight repacking (``use_extra_bufts``) on or off.

    llama-cpp-python has no argument for it. With it on, 0.3.36 built on a CPU
    with AMX (this project's machine, 2026-11-30) crashes with SIGSEGV in the
    first ``decode`` of SmolLM2 Q4_1; off, it answers. Called under the load lock.
    """
    if enabled:
        yield
        return
    import llama_cpp.llama as llama_module

    original = llama_module.llama_cpp.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    llama_module.llama_cpp.llama_model_default_params = params
    try:
        yield
    finally:
        llama_module.llama_cpp.llama_model_default_params = original


class LlamaCppLLM(CustomLLM):
    """A GGUF chat model run by llama.cpp in this process, streaming and cancellable."""

    model_path: str
    n_threads: int = 2
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    max_tokens: int = 160
    temperature: float = 0.6
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    #: llama.cpp's weight repacking into the layouts of its AMX/AVX-512 kernels ("extra buffer types").
    weight_repack: bool = False

    _llama: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _executor: ThreadPoolExecutor = PrivateAttr(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
    )

    @classmethod
    def class_name(cls) -> str:
        return "voicefleet_llamacpp"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.n_ctx,
            num_output=self.max_tokens,
            is_chat_model=True,
            model_name=Path(self.model_path).name,
        )

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    # ---- blocking work, run on the model thread ---------------------------
    def load(self) -> None:
        """Load the GGUF (blocking; idempotent)."""
        with self._lock:
            if self._llama is not None:
                return
            from llama_cpp import Llama  # heavy import, only where the model is used

            started = time.monotonic()
            with weight_repack_as(self.weight_repack):
                self._llama = Llama(
                    model_path=self.model_path,
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    n_gpu_layers=self.n_gpu_layers,
                    verbose=False,
                )
            log.info(
                "loaded %s (%d threads, context %d, %d GPU layers)",
                Path(self.model_path).name,
                self.n_threads,
                self.n_ctx,
                self.n_gpu_layers,
                extra={"ms": round((time.monotonic() - started) * 1000)},
            )

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repeat_penalty": self.repeat_penalty,
        }
        options.update({k: v for k, v in kwargs.items() if k in _GENERATION_OPTIONS and v is not None})
        return options

    def _chat_pieces(
        self, messages: Sequence[ChatMessage], cancel: threading.Event | None, kwargs: dict[str, Any]
    ) -> Iterator[str]:
        """Text pieces of a chat reply (blocking; holds the model while it runs)."""
        if self._llama is None:
            self.load()
        with self._lock:
            stream = self._llama.create_chat_completion(
                messages=[_to_dict(m) for m in messages], stream=True, **self._options(kwargs)
            )
            try:
                for chunk in stream:
                    if cancel is not None and cancel.is_set():
                        return
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            finally:
                stream.close()

    def _prompt_pieces(self, prompt: str, kwargs: dict[str, Any]) -> Iterator[str]:
        if self._llama is None:
            self.load()
        with self._lock:
            for chunk in self._llama.create_completion(prompt, stream=True, **self._options(kwargs)):
                piece = chunk["choices"][0]["text"]
                if piece:
                    yield piece

    def _produce(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
        kwargs: dict[str, Any],
    ) -> None:
        """Generate on the model thread, handing each piece to the event loop."""

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody listens any more
                cancel.set()

        if cancel.is_set():  # cancelled while waiting for the model
            put(_END)
            return
        try:
            for piece in self._chat_pieces(messages, cancel, kwargs):
                put(piece)
        except Exception as exc:  # reported to the consumer, which decides
            put(exc)
        else:
            put(_END)

    # ---- llama-index interface ----------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="".join(self._prompt_pieces(prompt, kwargs)))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            text = ""
            for piece in self._prompt_pieces(prompt, kwargs):
                text += piece
                yield CompletionResponse(text=text, delta=piece)

        return gen()

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = "".join(self._chat_pieces(messages, None, kwargs))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            text = ""
            for piece in self._chat_pieces(messages, None, kwargs):
                text += piece
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=piece)

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = ""
        async with aclosing(await self.astream_chat(messages, **kwargs)) as stream:
            async for response in stream:
                text = response.message.content or ""
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        async def gen() -> ChatResponseAsyncGen:
            text = ""
            async with aclosing(self.apieces(messages, **kwargs)) as pieces:
                async for piece in pieces:
                    text += piece
                    yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=piece)

        return gen()

    async def apieces(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncGenerator[str, None]:
        """The reply's text pieces; closing or cancelling the stream stops generation at the next token.

        ``astream_chat`` is built on this. The orchestrator uses it directly:
        llama-index's callback wrapper around ``astream_chat`` does not close
        the inner stream when it is closed itself, which would leave the model
        generating after a barge-in until garbage collection.
        """
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        loop.run_in_executor(self._executor, self._produce, list(messages), cancel, loop, queue, kwargs)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise BackendError(f"llama.cpp failed: {item}") from item
                yield item
        finally:
            # Closed early (barge-in, timeout, consumer gone): stop at the next token.
            cancel.set()

    # ---- lifecycle helpers used by the backend --------------------------------
    async def run_on_model_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        """Evaluate a prompt once so that its prefix (the system prompt) stays cached."""
        for _ in self._chat_pieces(messages, None, {"max_tokens": 1}):
            pass

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_GENERATION_OPTIONS = frozenset(
    {"max_tokens", "temperature", "top_p", "top_k", "repeat_penalty", "seed", "stop", "min_p", "grammar"}
)


def _with_tools(messages: Sequence[ChatMessage], tools: Sequence[BaseTool]) -> list[ChatMessage]:
    """The messages with the tools described at the end of the system message (added if there is none)."""
    out = list(messages)
    described = tool_grammar.tools_prompt(tools)
    if out and out[0].role == MessageRole.SYSTEM:
        out[0] = ChatMessage(role=MessageRole.SYSTEM, content=f"{out[0].content}\n\n{described}")
    else:
        out.insert(0, ChatMessage(role=MessageRole.SYSTEM, content=described))
    return out


def _to_dict(message: ChatMessage) -> dict[str, str]:
    role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
    return {"role": role, "content": message.content or ""}


class LlamaCppBackend(Backend):
    """The embedded default: any GGUF chat model in this process.

    With ``tool_grammar`` it offers tools (see :mod:`.tool_grammar`): the
    model sees them in its system message and is sampled under a grammar
    that allows one valid call or plain text.
    """

    name = "llamacpp"

    def __init__(self, llm: LlamaCppLLM, tool_grammar: bool = False) -> None:
        self._llm = llm
        self.tool_grammar = tool_grammar
        self._grammars: dict[tuple[str, ...], Any] = {}

    @property
    def llm(self) -> LLM:
        return self._llm

    @property
    def supports_tools(self) -> bool:
        return self.tool_grammar

    async def start(self, warm_messages: Sequence[ChatMessage]) -> None:
        await self._llm.run_on_model_thread(self._llm.load)
        if warm_messages:
            started = time.monotonic()
            await self._llm.run_on_model_thread(self._llm.warm, list(warm_messages))
            log.info("warmed the system prompt", extra={"ms": round((time.monotonic() - started) * 1000)})

    async def prefetch(self, messages: Sequence[ChatMessage]) -> None:
        await self._llm.run_on_model_thread(self._llm.warm, list(messages))

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        seed: int | None = None,
        tools: Sequence[BaseTool] | None = None,
    ) -> AsyncIterator[Piece]:
        if not (tools and self.tool_grammar):
            async with aclosing(self._llm.apieces(messages, max_tokens=max_tokens, seed=seed)) as pieces:
                async for piece in pieces:
                    yield Piece(text=piece)
            return
        messages = _with_tools(messages, tools)
        grammar = self._grammar(tools)
        call: str | None = None  # the reply so far, when it is a call (it starts with "{")
        started = False
        async with aclosing(self._llm.apieces(messages, max_tokens=max_tokens, seed=seed, grammar=grammar)) as pieces:
            async for piece in pieces:
                if not started and piece.strip():
                    started = True
                    call = "" if piece.lstrip().startswith(tool_grammar.CALL_PREFIX) else None
                if call is None:
                    yield Piece(text=piece)
                else:
                    call += piece
        if call is not None:
            parsed = tool_grammar.parse_call(call)
            if parsed is None:
                log.warning("the model's tool call was cut short: %r", call[:200])
                return
            yield Piece(tool_calls=[ToolRequest(f"call-{uuid.uuid4().hex[:8]}", parsed[0], parsed[1])])

    def _grammar(self, tools: Sequence[BaseTool]) -> Any:
        key = tuple(sorted(t.metadata.get_name() for t in tools))
        if key not in self._grammars:
            from llama_cpp.llama_grammar import LlamaGrammar

            self._grammars[key] = LlamaGrammar.from_string(tool_grammar.gbnf(tools), verbose=False)
        return self._grammars[key]

    async def close(self) -> None:
        self._llm.shutdown()

    def describe(self) -> dict[str, Any]:
        llm = self._llm
        return {
            "name": self.name,
            "model": Path(llm.model_path).name,
            "threads": llm.n_threads,
            "gpu_layers": llm.n_gpu_layers,
        }
