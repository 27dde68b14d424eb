"""Try backends in order until one answers.

A backend fails when it raises or stays silent past the first-token timeout
before its first token (the last backend of the chain gets a longer one:
waiting for a busy model beats giving up when nothing else is left). It is
retried with exponential backoff, then the next backend is used. A failed
backend is skipped for a cooldown period so that the following turns do not
each wait for it again (unless nothing else is left). Once a backend produced
its first token the reply is committed to it: switching mid-sentence would
make the assistant say things twice, so a later failure ends the reply.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import BaseTool

from .base import Backend, BackendError, Piece

log = logging.getLogger(__name__)

#: Called when a backend other than the first one answers: (failed names, answering backend, reason).
FallbackHook = Callable[[list[str], Backend, str], Awaitable[None]]
ToolsFor = Callable[[Backend], Sequence[BaseTool] | None]


class BackendsUnavailable(BackendError):
    """No backend of the chain could answer; ``timed_out``: the last one was there but too slow (busy)."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class FallbackChain:
    """Backends in order of preference, with retries, timeouts and cooldowns."""

    def __init__(
        self,
        backends: Sequence[Backend],
        first_token_timeout_s: float = 5.0,
        last_resort_timeout_s: float = 30.0,
        retries: int = 1,
        backoff_s: float = 0.25,
        cooldown_s: float = 30.0,
    ) -> None:
        if not backends:
            raise ValueError("a fallback chain needs at least one backend")
        self.backends = list(backends)
        self.first_token_timeout_s = first_token_timeout_s
        self.last_resort_timeout_s = max(first_token_timeout_s, last_resort_timeout_s)
        self.retries = retries
        self.backoff_s = backoff_s
        self.cooldown_s = cooldown_s
        self._down_until: dict[str, float] = {}

    @property
    def primary(self) -> Backend:
        return self.backends[0]

    def is_cooling(self, backend: Backend) -> bool:
        return self._down_until.get(backend.name, 0.0) > time.monotonic()

    def _candidates(self) -> list[Backend]:
        ready = [b for b in self.backends if not self.is_cooling(b)]
        return ready or [self.backends[-1]]  # all down: keep trying the last resort

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        seed: int | None = None,
        tools_for: ToolsFor | None = None,
        on_fallback: FallbackHook | None = None,
        spoken: threading.Event | None = None,
    ) -> AsyncGenerator[tuple[Backend, Piece], None]:
        """Pieces of the reply, each with the backend that wrote it (``spoken``: see :meth:`Backend.stream`)."""
        failed = [b.name for b in self.backends if self.is_cooling(b)]
        reason = "it was not answering a moment ago" if failed else ""
        timed_out = False
        candidates = self._candidates()
        for backend in candidates:
            tools = tools_for(backend) if tools_for else None
            timeout_s = self.last_resort_timeout_s if backend is candidates[-1] else self.first_token_timeout_s
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                pieces = aiter(backend.stream(messages, max_tokens=max_tokens, seed=seed, tools=tools, spoken=spoken))
                try:
                    async with asyncio.timeout(timeout_s):
                        first: Piece | None = await anext(pieces)
                except StopAsyncIteration:
                    first = None  # an empty reply is still an answer
                except Exception as exc:  # unreachable, HTTP error, timeout...
                    await _close(pieces)
                    reason = _describe(exc, timeout_s)
                    timed_out = isinstance(exc, TimeoutError)
                    log.warning("backend %s failed (attempt %d): %s", backend.name, attempt + 1, reason)
                    continue
                self._down_until.pop(backend.name, None)
                if failed and on_fallback is not None:
                    await on_fallback(failed, backend, reason)
                async with aclosing(pieces):  # type: ignore[type-var]
                    if first is not None:
                        yield backend, first
                    while True:
                        try:
                            async with asyncio.timeout(timeout_s):
                                piece = await anext(pieces)
                        except StopAsyncIteration:
                            return
                        except TimeoutError:
                            raise BackendError(f"{backend.name} stalled in the middle of a reply") from None
                        yield backend, piece
            self._down_until[backend.name] = time.monotonic() + self.cooldown_s
            if backend.name not in failed:
                failed.append(backend.name)
        raise BackendsUnavailable(f"no language model answered ({reason})", timed_out)


async def _close(pieces: AsyncIterator[Piece]) -> None:
    aclose = getattr(pieces, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # already broken; nothing more to release
            log.debug("closing a failed stream raised", exc_info=True)


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no first token within {timeout_s:g} s"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
