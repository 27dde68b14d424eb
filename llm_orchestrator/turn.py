"""One turn, from a transcript (or typed text) to a streamed, spoken reply.

The pipeline: explicit command? run the tool and say its result. Otherwise
build the prompt (persona, memory, history), stream the model through the
fallback chain, send each token to the client, cut speakable chunks as they
form, and request speech for each one. Cancelling the turn stops generation
at once; the history then keeps only what was actually handed to TTS.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.tools import BaseTool

from voicefleet import metrics
from voicefleet.bus import Bus
from voicefleet.messages import Error, Notice, TurnRequest, now
from voicefleet.sessions import SessionRecord, Sessions

from .backends import Backend, BackendError, BackendsUnavailable, FallbackChain, Piece
from .chunker import SpeechChunker
from .function_tools import function_tools, tool_name
from .history import History, HistoryEntry
from .intents import Intent, IntentParser
from .prompt import PromptBuilder
from .reply import Reply, TurnProgress
from .settings import LlmSettings
from .tools_client import ToolsClient

log = logging.getLogger(__name__)

SORRY_UNAVAILABLE = "Sorry, I can't reach my language model right now."
SORRY_FAILED = "Sorry, something went wrong while I was answering."
NO_ANSWER = "Sorry, I don't have an answer to that."
EXPIRED = "Sorry, I lost track of that request. Please ask again."


@dataclass
class TurnContext:
    """What every turn of this process shares."""

    bus: Bus
    settings: LlmSettings
    chain: FallbackChain
    history: History
    tools: ToolsClient
    prompt: PromptBuilder
    instance: str
    intents: IntentParser


class Turn:
    """Answers one :class:`TurnRequest`; :meth:`cancel` stops it."""

    def __init__(self, ctx: TurnContext, request: TurnRequest) -> None:
        self.ctx = ctx
        self.request = request
        self.cancelled = False
        self.cancel_reason = ""
        self.backend = ""
        self.assistant_text: str | None = None  # what goes to history, when not the model's text
        self.reply: Reply | None = None
        self._work: asyncio.Task[None] | None = None

    @property
    def session_id(self) -> str:
        return self.request.session_id

    @property
    def turn_id(self) -> str:
        return self.request.turn_id

    def _log(self, message: str, *args: object, ms: float | None = None, level: int = logging.INFO) -> None:
        extra = {"session": self.session_id, "turn": self.turn_id}
        if ms is not None:
            extra["ms"] = str(round(ms))
        log.log(level, message, *args, extra=extra)

    def cancel(self, reason: str) -> None:
        """Stop now: no more tokens, no more speech requests."""
        if self.cancelled:
            return
        self.cancelled, self.cancel_reason = True, reason
        if self.reply is not None:
            self.reply.cancelled = True
        if self._work is not None and not self._work.done():
            self._work.cancel()

    # ------------------------------------------------------------------
    async def run(self) -> None:
        bus, settings = self.ctx.bus, self.ctx.settings
        started = time.monotonic()
        progress, session, cancelled = await asyncio.gather(
            TurnProgress(bus, self.session_id, self.turn_id).load(),
            Sessions(bus).for_turn(self.session_id, self.request.user),
            bus.is_cancelled(self.session_id, self.turn_id),
        )
        if progress.done:
            self._log("turn already answered (redelivered); skipping")
            return
        reply = self.reply = Reply(bus, self.request, session, progress)
        reply.cancelled = self.cancelled
        if progress.exists:
            age = now() - min(self.request.ts.values(), default=now())
            if age > settings.stale_turn_s:
                await self._expired(reply, progress)
                return
            self._log("taking over a turn from %s (%d chunks spoken)", progress.owner or "?", progress.chunks)
        await progress.claim(self.ctx.instance)
        if cancelled:
            self.cancel("cancelled before start")
        if not self.cancelled:
            self._work = asyncio.create_task(self._respond(reply, session), name=f"turn-{self.turn_id}")
            try:
                await self._work
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not self.cancelled or (task is not None and task.cancelling()):
                    raise  # the service is stopping: leave the turn for another worker
            except Exception:
                log.exception("turn failed", extra={"session": self.session_id, "turn": self.turn_id})
                await self._fail(reply, "llm_failed", SORRY_FAILED)
        # reply.cancelled: the cancel marker was seen in Redis before its broadcast arrived.
        interrupted = self.cancelled or reply.cancelled
        await reply.done(interrupted, self.backend)
        await self._remember(reply, interrupted)
        await progress.finish()
        outcome = "interrupted" if interrupted else "answered"
        metrics.TURNS.labels("llm", outcome).inc()
        self._observe(reply.ts)
        self._log(
            "turn %s: %d chunks via %s%s",
            outcome,
            reply.seq,
            self.backend or "no model",
            f" ({self.cancel_reason})" if interrupted else "",
            ms=(time.monotonic() - started) * 1000,
        )

    async def _respond(self, reply: Reply, session: SessionRecord) -> None:
        text = self.request.text.strip()
        if not text:
            return
        intent = self.ctx.intents.parse(text, session.language) if self.ctx.settings.intents else None
        if intent is not None:
            await self._run_command(reply, session, intent)
        else:
            await self._run_model(reply, session, text)

    # ---- explicit commands ---------------------------------------------------
    async def _run_command(self, reply: Reply, session: SessionRecord, intent: Intent) -> None:
        self._log("command %s %s", intent.tool, intent.args)
        if intent.ask is not None:
            said = intent.ask
        else:
            result = await self.ctx.tools.call(
                intent.tool, intent.args, session_id=self.session_id, turn_id=self.turn_id, user=session.user
            )
            if intent.tool.startswith("memory."):
                self.ctx.tools.forget_cache(session.user)
            said = result.text or ("Done." if result.ok else "Sorry, that did not work.")
        self.assistant_text = said
        await self._say(reply, said)

    async def _say(self, reply: Reply, text: str) -> None:
        """Speak a fixed text (no model): one delta, then its chunks."""
        chunker = self._chunker(early_first=False)  # nothing to wait for: whole sentences sound better
        await reply.delta(text)
        await reply.speak_last([*chunker.feed(text), *chunker.flush()])

    # ---- the model -------------------------------------------------------------
    async def _run_model(self, reply: Reply, session: SessionRecord, text: str) -> None:
        ctx = self.ctx
        history, memory = await asyncio.gather(
            ctx.history.recent(self.session_id), ctx.tools.memory(session.user, self.session_id, self.turn_id)
        )
        messages = ctx.prompt.messages(ctx.prompt.system(memory), history, text)
        chunker = self._chunker()
        reply.stamp("llm_request")
        try:
            request = await self._stream(reply, chunker, messages, offer_tools=True)
            if request is not None and request.message is not None:
                messages += [request.message, *await self._run_functions(request, session)]
                await self._stream(reply, chunker, messages, offer_tools=False)
        except BackendsUnavailable as exc:
            self._log("no backend answered: %s", exc, level=logging.WARNING)
            await self._fail(reply, "llm_unavailable", SORRY_UNAVAILABLE)
            return
        except BackendError as exc:
            self._log("backend failed mid-reply: %s", exc, level=logging.WARNING)
            await reply.bus.emit_error(self.session_id, "llm_failed", str(exc), self.turn_id)
        rest = chunker.flush()
        if not reply.text.strip():
            await reply.delta(NO_ANSWER)
            rest = [NO_ANSWER]
        await reply.speak_last(rest)

    async def _stream(
        self, reply: Reply, chunker: SpeechChunker, messages: Sequence[ChatMessage], offer_tools: bool
    ) -> Piece | None:
        """Stream one model call into the reply; the piece asking for functions, if any."""
        settings = self.ctx.settings

        def tools_for(backend: Backend) -> Sequence[BaseTool] | None:
            wanted = offer_tools and settings.openai_function_calling and backend.supports_tools
            return function_tools() if wanted else None

        pieces = self.ctx.chain.stream(
            messages,
            max_tokens=settings.max_tokens,
            seed=zlib.crc32(self.turn_id.encode()),  # same prompt, same reply when a turn is retried
            tools_for=tools_for,
            on_fallback=self._fallback_notice,
        )
        async with aclosing(pieces):
            async for backend, piece in pieces:
                self.backend = backend.name
                if piece.text:
                    reply.stamp("llm_first_token")
                    await reply.delta(piece.text)
                    for chunk in chunker.feed(piece.text):
                        if not await reply.speak(chunk):
                            return None
                if piece.tool_calls:
                    return piece
        return None

    async def _run_functions(self, request: Piece, session: SessionRecord) -> list[ChatMessage]:
        """Run the functions the model asked for; their results as tool messages."""
        answers = []
        for call in request.tool_calls:
            tool = tool_name(call.name)
            if tool is None:
                text = f"There is no tool called {call.name}."
            else:
                result = await self.ctx.tools.call(
                    tool, call.args, session_id=self.session_id, turn_id=self.turn_id, user=session.user
                )
                text = result.text
                if tool.startswith("memory."):
                    self.ctx.tools.forget_cache(session.user)
            answers.append(
                ChatMessage(
                    role=MessageRole.TOOL,
                    content=text,
                    additional_kwargs={"tool_call_id": call.call_id, "name": call.name},
                )
            )
        return answers

    async def _fallback_notice(self, failed: list[str], backend: Backend, reason: str) -> None:
        names = " and ".join(failed)
        message = f"The {names} language model is not answering ({reason}); {backend.name} answered instead."
        notice = Notice(session_id=self.session_id, turn_id=self.turn_id, code="llm_fallback", message=message)
        await self.ctx.bus.emit(notice)

    # ---- endings -----------------------------------------------------------------
    async def _fail(self, reply: Reply, code: str, sentence: str) -> None:
        """Tell the client what went wrong, and say one sentence if nothing was said yet."""
        await self.ctx.bus.emit(Error(session_id=self.session_id, turn_id=self.turn_id, code=code, message=sentence))
        if not reply.spoken and not self.cancelled:
            self.assistant_text = sentence
            await reply.delta(sentence)
            await reply.speak(sentence, final=True)

    async def _expired(self, reply: Reply, progress: TurnProgress) -> None:
        self._log("turn is too old to answer after a worker died", level=logging.WARNING)
        await self.ctx.bus.emit(
            Error(session_id=self.session_id, turn_id=self.turn_id, code="turn_expired", message=EXPIRED)
        )
        await reply.done(interrupted=False)
        await progress.finish()
        metrics.TURNS.labels("llm", "expired").inc()

    async def _remember(self, reply: Reply, interrupted: bool) -> None:
        entries = []
        if self.request.text.strip():
            entries.append(HistoryEntry("user", self.request.text.strip(), self.turn_id))
        if interrupted:
            said = reply.spoken_text
        elif self.assistant_text is not None:
            said = self.assistant_text
        else:
            said = reply.text.strip()
        entries.append(HistoryEntry("assistant", said, self.turn_id, interrupted=interrupted))
        await self.ctx.history.append(self.session_id, *entries)

    def _chunker(self, early_first: bool = True) -> SpeechChunker:
        s = self.ctx.settings
        return SpeechChunker(s.first_chunk_min_words, s.max_chunk_chars, s.code_phrase, early_first)

    def _observe(self, ts: dict[str, float]) -> None:
        origin = ts.get("eot") or ts.get("transcript")
        if origin is None:
            return
        for stage in ("llm_request", "llm_first_token", "first_chunk"):
            if stage in ts:
                metrics.STAGE_LATENCY.labels(stage).observe(max(0.0, ts[stage] - origin))
