"""The WebSocket session with the gateway: connect, start, events, reconnect.

:class:`GatewaySession` is one connection: it sends ``start``, waits for
``ready`` and then yields the server's events (typed messages from
:mod:`voicefleet.messages`) and reply audio (``bytes``), keeping track of
where it is in the session (:class:`ResumePoint`). :class:`Reconnecting`
keeps a conversation alive across dropped connections and gateway restarts
with exponential backoff, resuming the same session (the rest of a reply
included) when the gateway still holds it, but gives up at once when the
gateway refuses the token or the options: retrying cannot fix those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from voicefleet import codec
from voicefleet.messages import SERVER_EVENTS, Error, Message, Ready, Start, Stop

log = logging.getLogger(__name__)

WS_PATH = "/v1/ws/audio"

# Close codes the gateway uses (RFC 6455).
POLICY, UNSUPPORTED, TRY_LATER = 1008, 1003, 1013

#: Gateway error codes that mean "these options will never be accepted".
OPTION_ERRORS = {
    "bad_sample_rate", "unknown_voice", "bad_start", "start_required", "resume_refused", "bad_resume_after",
}

Item = Message | bytes


class ClientError(Exception):
    """A failure with a sentence for a person; ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(ClientError):
    """The command line or settings cannot work (no token, a bad file...)."""

    exit_code = 2


class TokenRefused(ClientError):
    """The gateway refused the token (close code 1008): reconnecting would not help."""

    exit_code = 3


class OptionsRefused(ClientError):
    """The gateway refused the session's options (sample rate, voice...)."""

    exit_code = 2


class ConnectionLost(ClientError):
    """The gateway could not be reached, or the connection dropped: worth retrying."""

    exit_code = 4


def ws_url(gateway: str) -> str:
    """The WebSocket URL for ``gateway``, given as ws(s)://, http(s):// or host:port."""
    parts = urlsplit(gateway if "://" in gateway else f"ws://{gateway}")
    schemes = {"ws": "ws", "http": "ws", "wss": "wss", "https": "wss"}
    if parts.scheme not in schemes or not parts.netloc:
        raise UsageError(f"{gateway!r} is not a gateway URL (expected e.g. ws://127.0.0.1:8080)")
    path = parts.path.rstrip("/") or WS_PATH
    return urlunsplit((schemes[parts.scheme], parts.netloc, path, parts.query, ""))


@dataclass
class ResumePoint:
    """Where a client is in its session: enough to resume it after the connection drops."""

    session_id: str
    after: str = ""  # the last stream_id received
    audio_bytes: int = 0  # reply audio received since that event

    def saw(self, item: Item) -> None:
        if isinstance(item, bytes):
            self.audio_bytes += len(item)
        elif item.stream_id:
            self.after, self.audio_bytes = item.stream_id, 0


@dataclass
class StartOptions:
    """What the client asks for in ``start``; kept across reconnects, changed by ``configure``."""

    sample_rate: int = 16000
    output_sample_rate: int = 0
    wake_word: str | None = None  # None: the server's default; "": always listening
    voice: str | None = None
    speech_rate: float = 1.0
    language: str | None = None
    echo_cancelled: bool = False  # the client removes its speaker's echo itself (the server then does not)

    def message(self, resume: ResumePoint | None = None) -> Start:
        return Start(
            sample_rate=self.sample_rate,
            output_sample_rate=self.output_sample_rate,
            wake_word=self.wake_word,
            voice=self.voice,
            speech_rate=self.speech_rate,
            language=self.language,
            echo_cancelled=self.echo_cancelled,
            resume_session_id=resume.session_id if resume else None,
            resume_after=(resume.after or None) if resume else None,
            resume_audio_bytes=resume.audio_bytes if resume else 0,
        )


class GatewaySession:
    """One WebSocket session with the gateway."""

    def __init__(self, url: str, token: str, options: StartOptions, open_timeout_s: float = 5.0,
                 resume: ResumePoint | None = None) -> None:
        self.url = ws_url(url)
        self.token = token
        self.options = options
        self.open_timeout_s = open_timeout_s
        self.resume = resume
        self.ready: Ready | None = None
        #: Where this client is in the session (after ``ready``): pass it to the next connection to resume.
        self.position: ResumePoint | None = None
        self._ws: ClientConnection | None = None
        self._closing = False

    @property
    def session_id(self) -> str:
        return self.ready.session_id if self.ready else ""

    async def __aenter__(self) -> GatewaySession:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> Ready:
        """Connect, send ``start`` and wait for ``ready``."""
        try:
            self._ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self.token}"},
                open_timeout=self.open_timeout_s,
                max_size=4 << 20,
                # Reply audio must not wait behind a large send buffer.
                write_limit=1 << 16,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise TokenRefused(f"the gateway refused the token (HTTP {status})") from None
            raise ConnectionLost(f"the gateway answered HTTP {status} at {self.url}") from None
        except InvalidURI as exc:
            raise ClientError(f"{self.url} is not a valid WebSocket URL ({exc})") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ConnectionLost(f"cannot reach the gateway at {self.url} ({_describe(exc)})") from None
        error: Error | None = None
        try:
            await self._ws.send(codec.encode_text(self.options.message(self.resume)))
            async with asyncio.timeout(self.open_timeout_s):
                async for raw in self._ws:
                    if isinstance(raw, bytes):
                        continue
                    msg = _decode(raw)
                    if isinstance(msg, Ready):
                        self.ready = msg
                        resumed = self.resume if msg.resumed and self.resume else None
                        if resumed is not None and resumed.after == msg.stream_id:
                            # Audio counted before the drop still counts: the gateway skipped it.
                            self.position = ResumePoint(msg.session_id, msg.stream_id, resumed.audio_bytes)
                        else:
                            self.position = ResumePoint(msg.session_id, msg.stream_id)
                        log.info("session %s %s", msg.session_id, "resumed" if msg.resumed else "ready")
                        return msg
                    if isinstance(msg, Error):
                        error = msg
        except TimeoutError:
            await self.close()
            raise ConnectionLost(f"the gateway did not answer 'start' within {self.open_timeout_s:.0f} s") from None
        except ConnectionClosed as exc:
            raise _refusal(exc, error) from None
        except OSError as exc:
            raise ConnectionLost(f"the connection to the gateway failed ({_describe(exc)})") from None
        raise ConnectionLost("the gateway closed the connection before the session was ready")

    async def send(self, msg: Message) -> None:
        await self._send(codec.encode_text(msg))

    async def send_audio(self, pcm: bytes) -> None:
        await self._send(pcm)

    async def _send(self, data: str | bytes) -> None:
        if self._ws is None:
            raise ConnectionLost("not connected")
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise ConnectionLost(f"the connection to the gateway was lost ({_close_text(exc)})") from None
        except OSError as exc:
            raise ConnectionLost(f"the connection to the gateway failed ({_describe(exc)})") from None

    async def items(self) -> AsyncIterator[Item]:
        """Events and reply audio until the connection ends (then :class:`ConnectionLost`).

        An event this client does not understand (a newer server) is logged
        and skipped: one odd message must not end the conversation.
        """
        if self._ws is None:
            raise ConnectionLost("not connected")
        last_error: Error | None = None
        try:
            async for raw in self._ws:
                if isinstance(raw, bytes):
                    if self.position is not None:
                        self.position.saw(raw)
                    yield raw
                    continue
                msg = _decode(raw)
                if msg is None:
                    continue
                if self.position is not None:
                    self.position.saw(msg)
                if isinstance(msg, Error):
                    last_error = msg
                yield msg
        except ConnectionClosed as exc:
            if self._closing:
                return
            if exc.rcvd is not None and exc.rcvd.code == POLICY and last_error is None:
                raise TokenRefused(f"the gateway refused the token: {exc.rcvd.reason or 'no reason given'}") from None
            detail = last_error.message if last_error else _close_text(exc)
            raise ConnectionLost(f"the connection to the gateway was lost ({detail})") from None
        except OSError as exc:
            if not self._closing:
                raise ConnectionLost(f"the connection to the gateway failed ({_describe(exc)})") from None
            return
        if not self._closing:
            raise ConnectionLost("the gateway closed the connection")

    async def close(self) -> None:
        """Say ``stop`` and close; safe to call twice or after the connection dropped."""
        if self._ws is None or self._closing:
            return
        self._closing = True
        with contextlib.suppress(ConnectionClosed, OSError):
            await asyncio.wait_for(self._ws.send(codec.encode_text(Stop())), 1.0)
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            await asyncio.wait_for(self._ws.close(), 2.0)


class Reconnecting:
    """Keeps a conversation connected across gateway restarts.

    ``serve(session)`` runs while a session is open and returns when the user
    is done; if the connection drops meanwhile, the client connects again
    after a backoff (with jitter, so many clients do not all come back at
    once), asks to resume the same session where it stopped (the gateway
    replays what was missed, or opens a new session once the old one is
    gone), and ``serve`` runs again. A refused token or refused options end
    the loop.
    """

    def __init__(
        self,
        url: str,
        token: str,
        options: StartOptions,
        *,
        open_timeout_s: float = 5.0,
        first_delay_s: float = 0.5,
        max_delay_s: float = 10.0,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.url, self.token, self.options = url, token, options
        self.open_timeout_s = open_timeout_s
        self.first_delay_s, self.max_delay_s = first_delay_s, max_delay_s
        self.on_status = on_status or (lambda text: log.warning("%s", text))
        self.connections = 0

    async def run(self, serve: Callable[[GatewaySession], Awaitable[None]]) -> None:
        delay = self.first_delay_s
        failures = 0
        resume: ResumePoint | None = None
        while True:
            session = GatewaySession(self.url, self.token, self.options, self.open_timeout_s, resume)
            try:
                await session.open()
            except ConnectionLost as exc:
                wait = delay * random.uniform(0.8, 1.2)
                failures += 1
                what = exc.message if failures == 1 else f"still no gateway (attempt {failures})"
                self.on_status(f"{what}; retrying in {wait:.1f} s")
                await asyncio.sleep(wait)
                delay = min(self.max_delay_s, delay * 2)
                continue
            delay, failures = self.first_delay_s, 0
            self.connections += 1
            try:
                await serve(session)
                return
            except ConnectionLost as exc:
                self.on_status(f"{exc.message}; reconnecting")
                resume = session.position
            finally:
                await session.close()


def _decode(raw: str) -> Message | None:
    try:
        return codec.decode_text(raw, SERVER_EVENTS)
    except codec.DecodeError as exc:
        log.warning("skipping a server message this client does not understand: %s", exc.reason)
        return None


def _refusal(exc: ConnectionClosed, error: Error | None) -> ClientError:
    """Why the gateway closed a connection before ``ready``."""
    code = exc.rcvd.code if exc.rcvd is not None else None
    reason = exc.rcvd.reason if exc.rcvd is not None else ""
    if error is not None and error.code in OPTION_ERRORS:
        return OptionsRefused(f"the gateway refused the session: {error.message}")
    if code == POLICY and error is None:  # the gateway refuses tokens with a close reason only
        return TokenRefused(f"the gateway refused the token: {reason or 'no reason given'}")
    if code == UNSUPPORTED:
        return OptionsRefused(f"the gateway refused the session: {error.message if error else reason}")
    if error is not None:
        return ConnectionLost(f"the gateway closed the session: {error.message}")
    return ConnectionLost(f"the gateway closed the connection ({_close_text(exc)})")


def _close_text(exc: ConnectionClosed) -> str:
    if exc.rcvd is None:
        return "no close frame: the gateway went away"
    return f"code {exc.rcvd.code}" + (f": {exc.rcvd.reason}" if exc.rcvd.reason else "")


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
