"""llama.cpp in this process (llama-cpp-python), as a llama-index LLM.

Several sessions share one model, and the turn someone is waiting for goes
first. The model file is opened as a small pool of llama.cpp contexts
(``n_contexts``, each a ``Llama`` on the same GGUF: the weights are mmapped, so
their pages are shared; each context has its own KV cache). A reply runs in
the context whose cached prompt shares the longest start with its own (the
same session's previous turn, mostly; else the least recently used one), so
a session's history is not read again at every turn because another session
spoke in between.

One model thread runs every llama.cpp call, one token step at a time across
the running replies. It picks, in order:

1. a reply whose first speakable chunk is not out yet (``spoken`` not set,
   and fewer than ``URGENT_TOKENS`` tokens written), oldest first: someone
   is waiting in silence for it;
2. otherwise the running replies in turn (round robin): they are already
   being spoken, and generation is ~20 times faster than speech, so a pause
   of a few tokens is not heard;
3. background work (warming a prompt) last.

Tokens travel back to the event loop through an ``asyncio.Queue``; a cancel
flag, checked before every step, stops a generation within one token of a
barge-in and frees its context.

llama-index's own LlamaCPP integration pulls in dependencies we do not want
and formats prompts itself; this class uses the model's own chat template
through ``create_chat_completion``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue as sync_queue
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future
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

#: A reply goes first until its first speakable chunk is out, or at most this many tokens (a caller
#: that never says, a tool call that is never spoken): about the longest first chunk (240 characters).
URGENT_TOKENS = 48


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


def _prompt_key(messages: Sequence[dict[str, str]]) -> str:
    """A chat prompt as one string, to compare what two prompts share from the start.

    A prompt that ends with an empty user message (warming a session's history
    for its next turn) ends where that message's text would start.
    """
    if messages and messages[-1]["role"] == "user" and not messages[-1]["content"]:
        return "".join(f"\x00{m['role']}\x01{m['content']}" for m in messages)
    return "".join(f"\x00{m['role']}\x01{m['content']}" for m in messages) + "\x00assistant\x01"


def _shared(a: str, b: str) -> int:
    """Length of the common start of two strings."""
    return len(os.path.commonprefix((a, b)))  # noqa: RUF071 (characters are what is compared here)


class _Context:
    """One llama.cpp context of the pool and what its KV cache holds (roughly: as text)."""

    def __init__(self, index: int, llama: Any) -> None:
        self.index = index
        self.llama = llama
        self.key = ""  # the prompt and reply it last read, as ``_prompt_key`` writes them
        self.prompt_len = 0  # where the prompt ends in ``key`` (the reply follows)
        self.used = 0  # step counter when it was last given to a reply (least recently used goes first)
        self.stream: _Stream | None = None


class _Stream:
    """One generation waiting for or holding a context."""

    def __init__(
        self,
        key: str,
        open_pieces: Callable[[Any], Iterator[str]],
        put: Callable[[Any], None],
        cancel: threading.Event,
        spoken: threading.Event | None,
        background: bool,
        order: int,
    ) -> None:
        self.key = key
        self.open_pieces = open_pieces
        self.put = put
        self.cancel = cancel
        self.spoken = spoken
        self.background = background
        self.order = order
        self.context: _Context | None = None
        self.pieces: Iterator[str] | None = None
        self.tokens = 0
        self.text = ""
        self.stepped = 0  # step counter when it last ran (round robin)

    @property
    def urgent(self) -> bool:
        if self.background or self.tokens >= URGENT_TOKENS:
            return False
        return self.spoken is None or not self.spoken.is_set()


class _Scheduler:
    """The model thread: runs token steps of the replies in ``_Context``s, most urgent first."""

    def __init__(self, contexts: list[_Context]) -> None:
        self.contexts = contexts
        self._cond = threading.Condition()
        self._waiting: list[_Stream] = []  # no context yet, oldest first
        self._jobs: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._closed = False
        self._steps = 0
        self._order = itertools.count()
        self.thread = threading.Thread(target=self._run, name="llamacpp", daemon=True)
        self.thread.start()

    # ---- from any thread ----------------------------------------------------------
    def submit(self, stream_args: dict[str, Any]) -> _Stream:
        with self._cond:
            stream = _Stream(order=next(self._order), **stream_args)
            if self._closed:
                stream.put(BackendError("the model is shut down"))
            else:
                self._waiting.append(stream)
                self._cond.notify()
            return stream

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on the model thread between two steps, once cancelled replies have let go."""
        future: Future[Any] = Future()
        with self._cond:
            if self._closed:
                future.set_exception(RuntimeError("the model is shut down"))
            else:
                self._jobs.append((fn, future))
                self._cond.notify()
        return future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    @property
    def running(self) -> int:
        """Replies holding a context now."""
        return sum(1 for c in self.contexts if c.stream is not None)

    # ---- on the model thread ------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    self._reap()
                    if self._closed:
                        self._close_all()
                        return
                    jobs, self._jobs = self._jobs, []
                    if jobs:
                        break
                    self._assign()
                    stream = self._pick()
                    if stream is not None:
                        break
                    self._cond.wait()
            if jobs:
                for fn, future in jobs:
                    if future.set_running_or_notify_cancel():
                        try:
                            future.set_result(fn())
                        except BaseException as exc:  # handed to the caller
                            future.set_exception(exc)
                continue
            self._step(stream)

    def _reap(self) -> None:
        """Let go of cancelled replies: their contexts are free for the next step."""
        self._waiting = [s for s in self._waiting if not s.cancel.is_set()]
        for context in self.contexts:
            if context.stream is not None and context.stream.cancel.is_set():
                self._finish(context.stream, _END)

    def _assign(self) -> None:
        """Give free contexts to waiting replies, oldest first.

        A reply goes to the context whose last prompt its own prompt continues
        (the same conversation: only the new messages are read), the longest
        such; else to the least recently used context, keeping the others'
        conversations cached (every context holds the system prompt).
        """
        while self._waiting:
            free = [c for c in self.contexts if c.stream is None]
            if not free:
                return
            stream = self._waiting.pop(0)

            def fit(c: _Context, key: str = stream.key) -> tuple[int, int]:
                shared = _shared(c.key, key)
                return (1, shared) if c.key and shared >= c.prompt_len else (0, -c.used)

            best = max(free, key=fit)
            self._steps += 1
            best.stream, best.used, stream.context = stream, self._steps, best

    def _pick(self) -> _Stream | None:
        running = [c.stream for c in self.contexts if c.stream is not None]
        if not running:
            return None
        urgent = [s for s in running if s.urgent]
        if urgent:
            return min(urgent, key=lambda s: s.order)
        foreground = [s for s in running if not s.background] or running
        return min(foreground, key=lambda s: (s.stepped, s.order))

    def _step(self, stream: _Stream) -> None:
        """One token (the first step also reads the prompt) of one reply."""
        context = stream.context
        assert context is not None
        self._steps += 1
        stream.stepped = self._steps
        try:
            if stream.pieces is None:
                # From now on its cache holds (the start of) this prompt.
                context.key, context.prompt_len = stream.key, len(stream.key)
                stream.pieces = stream.open_pieces(context.llama)
            piece = next(stream.pieces)
        except StopIteration:
            with self._cond:
                self._finish(stream, _END)
            return
        except Exception as exc:  # reported to the consumer, which decides
            with self._cond:
                self._finish(stream, exc)
            return
        stream.tokens += 1
        if piece:
            stream.text += piece
            stream.put(piece)

    def _finish(self, stream: _Stream, last: Any) -> None:
        """Close a reply's generation, free its context and tell the consumer (under the lock)."""
        context = stream.context
        if stream.pieces is not None:
            try:
                close = getattr(stream.pieces, "close", None)
                if close is not None:
                    close()
            except Exception:  # already broken: nothing more to release
                log.debug("closing a generation raised", exc_info=True)
        if context is not None:
            context.key = stream.key + stream.text
            context.stream = None
            stream.context = None
        if not stream.cancel.is_set():
            stream.put(last)

    def _close_all(self) -> None:
        for context in self.contexts:
            if context.stream is not None:
                self._finish(context.stream, BackendError("the model is shut down"))
        for stream in self._waiting:
            stream.put(BackendError("the model is shut down"))
        self._waiting = []
        for _, future in self._jobs:
            future.cancel()
        self._jobs = []


class LlamaCppLLM(CustomLLM):
    """A GGUF chat model run by llama.cpp in this process, streaming and cancellable, shared fairly."""

    model_path: str
    n_threads: int = 2
    n_ctx: int = 4096
    #: llama.cpp contexts on the one model: replies generated at once, each session keeping its own cache.
    n_contexts: int = 4
    n_gpu_layers: int = 0
    max_tokens: int = 160
    temperature: float = 0.6
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    #: llama.cpp's weight repacking into the layouts of its AMX/AVX-512 kernels ("extra buffer types").
    weight_repack: bool = False

    _contexts: list[_Context] = PrivateAttr(default_factory=list)
    _scheduler: _Scheduler | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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
        return self._scheduler is not None

    @property
    def contexts(self) -> list[Any]:
        """The ``Llama`` objects of the pool (use them only on the model thread: :meth:`run_on_model_thread`)."""
        return [c.llama for c in self._contexts]

    @property
    def running(self) -> int:
        """Replies holding a context now."""
        return self._scheduler.running if self._scheduler is not None else 0

    # ---- loading ------------------------------------------------------------------
    def load(self) -> None:
        """Load the GGUF into ``n_contexts`` contexts and start the model thread (blocking; idempotent)."""
        with self._lock:
            if self._scheduler is not None:
                return
            from llama_cpp import Llama  # heavy import, only where the model is used

            started = time.monotonic()
            contexts = []
            with weight_repack_as(self.weight_repack):
                for i in range(max(1, self.n_contexts)):
                    llama = Llama(
                        model_path=self.model_path,
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        n_threads_batch=self.n_threads,
                        n_gpu_layers=self.n_gpu_layers,
                        use_mmap=True,  # the contexts share the weights' pages
                        verbose=False,
                    )
                    contexts.append(_Context(i, llama))
            self._contexts = contexts
            self._scheduler = _Scheduler(contexts)
            log.info(
                "loaded %s (%d contexts, %d threads, context %d, %d GPU layers, RSS %s MiB)",
                Path(self.model_path).name,
                len(contexts),
                self.n_threads,
                self.n_ctx,
                self.n_gpu_layers,
                _rss_mib(),
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

    # ---- streams through the model thread --------------------------------------------
    def _submit(
        self,
        messages: Sequence[ChatMessage] | None,
        prompt: str | None,
        kwargs: dict[str, Any],
        put: Callable[[Any], None],
        cancel: threading.Event,
        spoken: threading.Event | None = None,
        background: bool = False,
    ) -> None:
        if self._scheduler is None:
            self.load()
        assert self._scheduler is not None
        options = self._options(kwargs)
        if messages is not None:
            chat = [_to_dict(m) for m in messages]
            key = _prompt_key(chat)

            def open_pieces(llama: Any) -> Iterator[str]:
                for chunk in llama.create_chat_completion(messages=chat, stream=True, **options):
                    yield chunk["choices"][0]["delta"].get("content") or ""

        else:
            key = prompt or ""

            def open_pieces(llama: Any) -> Iterator[str]:
                for chunk in llama.create_completion(prompt, stream=True, **options):
                    yield chunk["choices"][0]["text"] or ""

        self._scheduler.submit(
            {"key": key, "open_pieces": open_pieces, "put": put, "cancel": cancel, "spoken": spoken,
             "background": background}
        )

    def _pieces(
        self,
        messages: Sequence[ChatMessage] | None,
        prompt: str | None,
        kwargs: dict[str, Any],
        background: bool = False,
    ) -> Iterator[str]:
        """Text pieces of a reply, blocking (for llama-index's synchronous calls)."""
        items: sync_queue.SimpleQueue[Any] = sync_queue.SimpleQueue()
        cancel = threading.Event()
        self._submit(messages, prompt, kwargs, items.put, cancel, background=background)
        try:
            while True:
                item = items.get()
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            cancel.set()
            if self._scheduler is not None:
                self._scheduler.wake()

    async def apieces(
        self, messages: Sequence[ChatMessage], spoken: threading.Event | None = None, **kwargs: Any
    ) -> AsyncGenerator[str, None]:
        """The reply's text pieces; closing or cancelling the stream stops generation at the next token.

        ``spoken``: set by the caller once the reply's first speakable chunk is
        out; until then this reply goes before the others (see the module).

        ``astream_chat`` is built on this. The orchestrator uses it directly:
        llama-index's callback wrapper around ``astream_chat`` does not close
        the inner stream when it is closed itself, which would leave the model
        generating after a barge-in until garbage collection.
        """
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody listens any more
                cancel.set()

        if self._scheduler is None:
            await asyncio.to_thread(self.load)
        self._submit(list(messages), None, kwargs, put, cancel, spoken)
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
            if self._scheduler is not None:
                self._scheduler.wake()

    # ---- llama-index interface ----------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="".join(self._pieces(None, prompt, kwargs)))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            text = ""
            for piece in self._pieces(None, prompt, kwargs):
                text += piece
                yield CompletionResponse(text=text, delta=piece)

        return gen()

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = "".join(self._pieces(messages, None, kwargs))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            text = ""
            for piece in self._pieces(messages, None, kwargs):
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

    # ---- lifecycle helpers used by the backend --------------------------------
    async def run_on_model_thread(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the model thread between two token steps (after cancelled replies let go)."""
        if self._scheduler is None:
            await asyncio.to_thread(self.load)
        assert self._scheduler is not None
        return await asyncio.wrap_future(self._scheduler.call(lambda: fn(*args)))

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        """Read a prompt once (background work: after every reply) so that its start stays cached (blocking)."""
        for _ in self._pieces(messages, None, {"max_tokens": 1}, background=True):
            pass

    async def awarm(self, messages: Sequence[ChatMessage], every_context: bool = False) -> None:
        """:meth:`warm` without blocking the loop; ``every_context``: in each context of the pool (start-up)."""
        if self._scheduler is None:
            await asyncio.to_thread(self.load)
        times = len(self._contexts) if every_context else 1
        # Submitted together, the warm-ups take one free context each.
        await asyncio.gather(*(self._awarm_one(messages) for _ in range(times)))

    async def _awarm_one(self, messages: Sequence[ChatMessage]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def put(item: Any) -> None:
            if item is _END or isinstance(item, Exception):
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(item))

        self._submit(list(messages), None, {"max_tokens": 1}, put, threading.Event(), background=True)
        outcome = await done
        if isinstance(outcome, Exception):
            raise BackendError(f"llama.cpp failed: {outcome}") from outcome

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()


def _rss_mib() -> str:
    """This process's resident memory (Linux), for the load log line."""
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return str(round(int(line.split()[1]) / 1024))
    except OSError:
        pass
    return "?"


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
        await asyncio.to_thread(self._llm.load)
        if warm_messages:
            started = time.monotonic()
            await self._llm.awarm(list(warm_messages), every_context=True)
            log.info("warmed the system prompt", extra={"ms": round((time.monotonic() - started) * 1000)})

    async def prefetch(self, messages: Sequence[ChatMessage]) -> None:
        await self._llm.awarm(list(messages))

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        seed: int | None = None,
        tools: Sequence[BaseTool] | None = None,
        spoken: threading.Event | None = None,
    ) -> AsyncIterator[Piece]:
        if not (tools and self.tool_grammar):
            async with aclosing(self._llm.apieces(messages, spoken, max_tokens=max_tokens, seed=seed)) as pieces:
                async for piece in pieces:
                    yield Piece(text=piece)
            return
        messages = _with_tools(messages, tools)
        grammar = self._grammar(tools)
        call: str | None = None  # the reply so far, when it is a call (it starts with "{")
        started = False
        pieces = self._llm.apieces(messages, spoken, max_tokens=max_tokens, seed=seed, grammar=grammar)
        async with aclosing(pieces):
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
            "contexts": llm.n_contexts,
            "running": llm.running,
            "gpu_layers": llm.n_gpu_layers,
        }
