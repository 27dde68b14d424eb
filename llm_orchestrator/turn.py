"""One turn, from a transcript (or typed text) to a streamed, spoken reply.

The pipeline: explicit command? run the tool and say its result. Otherwise
build the prompt (persona, memory, history), stream the model through the
fallback chain, send each token to the client, cut speakable chunks as they
form, and request speech for each one. Cancelling the turn stops generation
at once; the history then keeps only what was actually handed to TTS.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import zlib
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.tools import BaseTool

from voicefleet import metrics, tracing
from voicefleet.bus import Bus
from voicefleet.messages import BARGE_IN_UNHEARD, Error, Notice, TurnRequest, now
from voicefleet.remote_tools import RemoteTool
from voicefleet.sessions import SessionRecord, Sessions

from .backends import Backend, BackendError, BackendsUnavailable, FallbackChain, Piece
from .chunker import SpeechChunker
from .function_tools import function_tools, tool_name
from .gated import GatedSpeech
from .guard import LONG_ENOUGH, MIN_WORDS, Context, ReplyGate, words
from .history import History, HistoryEntry, trim
from .intents import Intent, IntentParser
from .prompt import PromptBuilder, wants_long
from .reply import Reply, TurnProgress
from .settings import LlmSettings
from .tools_client import ToolsClient

log = logging.getLogger(__name__)

SORRY_UNAVAILABLE = "Sorry, I can't reach my language model right now."
#: The model is there but did not start answering in time (a machine busy with other sessions).
SORRY_BUSY = "Sorry, I'm too busy to answer that right now. Please ask me again in a moment."
SORRY_FAILED = "Sorry, something went wrong while I was answering."
NO_ANSWER = "Sorry, I don't have an answer to that."
#: Said when the model's answer was an echo, a copy or a claimed action twice (see ``guard``), by language.
DONT_KNOW = {"en": "Sorry, I don't know how to answer that.", "fr": "Désolé, je ne sais pas quoi répondre à ça."}
#: The same after a few words ("Good morning!") that the model could only say back.
HOW_CAN_I_HELP = {"en": "How can I help?", "fr": "Que puis-je faire pour vous ?"}
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
        self.answered_by = ""  # the tool (or "fallback") that answered instead of the model: kept out of prompts
        self._warm_system: str | None = None  # set when the prompt cache no longer holds the history
        self.reply: Reply | None = None
        self._remote: dict[str, RemoteTool] = {}  # MCP tools offered to the model in this turn
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
            bus.cancel_reason(self.session_id, self.turn_id),
        )
        if progress.done:
            self._log("turn already answered (redelivered); skipping")
            return
        if not progress.exists and not cancelled:
            await self._take_unheard()
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
            self.cancel(cancelled)  # its reason: a barge-in with nothing heard keeps its words for the next turn
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
        # History first: a client may send the next turn the moment it sees reply_done.
        await self._remember(reply, interrupted)
        await reply.done(interrupted, self.backend)
        await progress.finish()
        if self._warm_system is not None:
            await self._warm_history(self._warm_system)
        outcome = "interrupted" if interrupted else "answered"
        metrics.TURNS.labels("llm", outcome).inc()
        tracing.set_attributes(outcome=outcome, backend=self.backend, answered_by=self.answered_by, chunks=reply.seq)
        self._observe(reply.ts)
        self._log(
            "turn %s: %d chunks via %s%s",
            outcome,
            reply.seq,
            self.backend or "no model",
            f" ({self.cancel_reason})" if interrupted else "",
            ms=(time.monotonic() - started) * 1000,
        )

    async def _take_unheard(self) -> None:
        """Answer the session's last turn too when none of its reply was heard: its words come first.

        The person paused, the turn ended, and they went on before the reply
        played (a barge-in with nothing heard): one request in two turns. Its
        exchange leaves the history, and this turn's text holds both parts.
        """
        max_age = self.ctx.settings.merge_unheard_s
        if self.request.history is not None or max_age <= 0:
            return
        earlier = await self.ctx.history.take_unheard(self.session_id, self.turn_id, max_age)
        if earlier is None:
            return
        if self.request.continues == earlier.turn_id:
            self._log("the words of turn %s are in this transcript already", earlier.turn_id)
            return  # the STT worker heard the two as one utterance (its carry-on)
        text = join_parts(earlier.content, self.request.text)
        self._log("answering turn %s (nothing of its reply heard) with this one: %r", earlier.turn_id, text)
        self.request = self.request.model_copy(update={"text": text})

    async def _respond(self, reply: Reply, session: SessionRecord) -> None:
        text = self.request.text.strip()
        if not text:
            return
        intent = None
        if self.ctx.settings.intents:
            with tracing.span("llm.intent", language=session.language or "") as span:
                intent = self.ctx.intents.parse(text, session.language)
                span.set_attribute("tool", intent.tool if intent is not None else "")
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
        self.assistant_text, self.answered_by = said, intent.tool
        await self._say(reply, said)

    async def _say(self, reply: Reply, text: str) -> None:
        """Speak a fixed text (no model): one delta, then its chunks."""
        chunker = self._chunker(early_first=False)  # nothing to wait for: whole sentences sound better
        await reply.delta(text)
        await reply.speak_last([*chunker.feed(text), *chunker.flush()])

    # ---- the model -------------------------------------------------------------
    async def _run_model(self, reply: Reply, session: SessionRecord, text: str) -> None:
        ctx, settings = self.ctx, self.ctx.settings
        history, memory = await asyncio.gather(
            self._history(), ctx.tools.memory(session.user, self.session_id, self.turn_id)
        )
        system = ctx.prompt.system(memory, session.language)
        long = wants_long(text)
        language = (session.language or "en").split("-")[0].split("_")[0].lower()
        check = Context(text, exchanges(history), language=language) if settings.reply_checks else None
        seed = zlib.crc32(self.turn_id.encode())  # same prompt, same reply when a turn is retried
        reply.stamp("llm_request")
        try:
            speech = await self._answer(reply, session, ctx.prompt.messages(system, history, text), check, long, seed)
            if speech.gate.rejected is not None:
                reason = speech.gate.rejected
                self._log("first answer rejected (%s): asking again without the history", reason)
                messages = ctx.prompt.retry(system, text)
                self._warm_system = system  # the retry's prompt replaces the history in the cache
                speech = await self._answer(reply, session, messages, check, long, seed + 1, offer_tools=False)
            if speech.gate.rejected is not None:
                self._log("second answer rejected too (%s)", speech.gate.rejected)
                short = speech.gate.rejected == "echo" and len(words(text)) <= MIN_WORDS
                sorry = (HOW_CAN_I_HELP if short else DONT_KNOW)["fr" if language == "fr" else "en"]
                self.assistant_text, self.answered_by = sorry, "fallback"
                await reply.delta(sorry)
                await reply.speak_last([sorry])
                return
        except BackendsUnavailable as exc:
            self._log("no backend answered: %s", exc, level=logging.WARNING)
            await self._fail(reply, "llm_unavailable", SORRY_BUSY if exc.timed_out else SORRY_UNAVAILABLE)
            return
        rest = speech.rest
        if speech.gate.stopped not in (None, LONG_ENOUGH):
            self._log("reply ended early: a chunk was a %s", speech.gate.stopped)
            self.assistant_text = speech.said  # the history keeps what was said, not what was refused
        if not reply.text.strip():
            await reply.delta(NO_ANSWER)
            rest = [NO_ANSWER]
        if not speech.final_sent:
            await reply.speak_last(rest)

    async def _history(self) -> list[HistoryEntry]:
        """The conversation so far: the one the client sent with the turn (HTTP chat), else the session's."""
        given = self.request.history
        if given is None:
            return await self.ctx.history.recent(self.session_id)
        if self.ctx.history.max_turns == 0 or self.ctx.history.token_budget == 0:
            return []
        entries = [HistoryEntry(e.role, e.content) for e in given]
        return trim(entries, self.ctx.history.max_turns, self.ctx.history.token_budget)

    async def _warm_history(self, system: str) -> None:
        """Read the session's prompt into the model's cache again, for the next turn (the reply is done)."""
        backend = next((b for b in self.ctx.chain.backends if b.name == self.backend), None)
        if backend is None:
            return
        started = time.monotonic()
        history = await self.ctx.history.recent(self.session_id)
        try:
            await backend.prefetch(self.ctx.prompt.messages(system, history, ""))
        except Exception:  # only an optimisation: the next turn reads the prompt itself
            log.warning("could not warm the history", exc_info=True)
        self._log("warmed the history after a retry", ms=(time.monotonic() - started) * 1000)

    async def _answer(
        self,
        reply: Reply,
        session: SessionRecord,
        messages: list[ChatMessage],
        check: Context | None,
        long: bool,
        seed: int,
        offer_tools: bool = True,
    ) -> GatedSpeech:
        """One try at the answer: stream the model (and the functions it asks for) through the gate."""
        settings = self.ctx.settings
        sentences = settings.long_max_sentences if long else settings.max_sentences
        max_tokens = max(settings.max_tokens, settings.long_max_tokens) if long else settings.max_tokens
        speech = GatedSpeech(reply, self._chunker(), ReplyGate(check, sentences))
        try:
            request = await self._stream(speech, messages, max_tokens, seed, offer_tools)
            if request is not None:
                results = await self._run_functions(request, session)
                if check is not None:
                    speech.gate.context = replace(check, tools_ran=True)
                if request.message is not None:  # a model that reads tool results answers from them
                    messages = [*messages, request.message, *results]
                    await self._stream(speech, messages, max_tokens, seed, offer_tools=False)
                else:  # a call made under a grammar: the tool's own words are the answer, as for commands
                    speech.gate.context = None
                    self.answered_by = "+".join(c.name for c in request.tool_calls)
                    await speech.feed(" ".join(str(r.content) for r in results))
        except BackendsUnavailable:
            raise
        except BackendError as exc:
            self._log("backend failed mid-reply: %s", exc, level=logging.WARNING)
            await reply.bus.emit_error(self.session_id, "llm_failed", str(exc), self.turn_id)
        await speech.finish()  # the last chunks are judged too: a short reply may be rejected only now
        return speech

    async def _stream(
        self, speech: GatedSpeech, messages: Sequence[ChatMessage], max_tokens: int, seed: int, offer_tools: bool
    ) -> Piece | None:
        """Stream one model call into the reply; the piece asking for functions, if any."""

        if offer_tools and any(b.supports_tools for b in self.ctx.chain.backends):
            self._remote = await self.ctx.tools.remote_tools()

        def tools_for(backend: Backend) -> Sequence[BaseTool] | None:
            return function_tools(self._remote) if offer_tools and backend.supports_tools else None

        pieces = self.ctx.chain.stream(
            messages,
            max_tokens=max_tokens,
            seed=seed,
            tools_for=tools_for,
            on_fallback=self._fallback_notice,
            spoken=speech.reply.first_spoken,
        )
        with tracing.span("llm.generate", max_tokens=max_tokens, tools_offered=offer_tools) as span:
            answering = ""
            async with aclosing(pieces):
                async for backend, piece in pieces:
                    if backend.name != answering:  # the first piece, or a fallback took over
                        answering = self.backend = backend.name
                        span.set_attribute("backend", answering)
                    if piece.text:
                        speech.reply.stamp("llm_first_token")
                        if not await speech.feed(piece.text):
                            return None  # cancelled, or the gate ended the reply: closing the stream stops the model
                    if piece.tool_calls:
                        span.set_attribute("tool_calls", len(piece.tool_calls))
                        return piece
        return None

    async def _run_functions(self, request: Piece, session: SessionRecord) -> list[ChatMessage]:
        """Run the functions the model asked for; their results as tool messages."""
        answers = []
        for call in request.tool_calls:
            tool = tool_name(call.name, self._remote)
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
        if self.request.history is not None:
            return  # the client keeps this conversation and sends it with every turn
        entries = []
        tool = self.answered_by
        if self.request.text.strip():
            entries.append(HistoryEntry("user", self.request.text.strip(), self.turn_id, tool=tool))
        # The marker holds the first reason (a barge-in's turn is then superseded by the next turn too).
        reason = ""
        if interrupted:
            reason = await self.ctx.bus.cancel_reason(self.session_id, self.turn_id) or self.cancel_reason
        unheard = reason == BARGE_IN_UNHEARD
        if unheard:
            said = ""  # handed to TTS perhaps, but never played: the next turn takes this one's words
        elif interrupted:
            said = reply.spoken_text
        elif self.assistant_text is not None:
            said = self.assistant_text
        else:
            said = reply.text.strip()
        entries.append(
            HistoryEntry("assistant", said, self.turn_id, interrupted=interrupted, tool=tool, unheard=unheard)
        )
        await self.ctx.history.append(self.session_id, *entries)

    def _chunker(self, early_first: bool = True) -> SpeechChunker:
        s = self.ctx.settings
        return SpeechChunker(s.first_chunk_min_words, s.max_chunk_chars, s.code_phrase, early_first,
                             first_max_words=s.first_chunk_max_words)

    def _observe(self, ts: dict[str, float]) -> None:
        origin = ts.get("eot") or ts.get("transcript")
        if origin is None:
            return
        for stage in ("llm_request", "llm_first_token", "first_chunk"):
            if stage in ts:
                metrics.STAGE_LATENCY.labels(stage).observe(max(0.0, ts[stage] - origin))


def join_parts(first: str, then: str) -> str:
    """One request from a sentence and the words that went on from it: "begin," + "Right?" -> "begin, right?"."""
    first, then = first.strip(), then.strip()
    if not first or not then:
        return first or then
    word = then.split()[0]
    pronoun = word[0] == "I" and (len(word) == 1 or not word[1].isalpha())  # I, I'm, I'll
    if first[-1] not in ".!?" and word[0].isupper() and word[1:].islower() and not pronoun:
        then = then[0].lower() + then[1:]  # Whisper capitalised it as a sentence of its own
    return f"{first} {then}"


def exchanges(history: Sequence[HistoryEntry]) -> tuple[tuple[str, str], ...]:
    """The (question, answer) pairs of a prompt's history, for the reply checks."""
    pairs = []
    for question, answer in itertools.pairwise(history):
        if question.role == "user" and answer.role == "assistant":
            pairs.append((question.content, answer.content))
    return tuple(pairs)
