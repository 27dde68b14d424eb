"""The laptop conversation: microphone to the gateway, replies to the speaker.

:class:`LiveClient` runs one conversation across reconnects. Audio hardware
comes in through :class:`audio_client.devices.AudioIO` (PyAudio in real use);
with no hardware (``--text-only``) the user types and reads. Lines typed on
stdin are sent as text; ``/stop`` interrupts the reply, ``/quit`` ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from typing import TextIO

import numpy as np
import soxr

from voicefleet.aec import EchoCanceller
from voicefleet.audio import BUS_RATE
from voicefleet.messages import (
    AudioEnd,
    AudioStart,
    Configure,
    Error,
    Interrupt,
    Interrupted,
    Message,
    Notice,
    PlaybackFinished,
    PlaybackStarted,
    Ready,
    ReplyDelta,
    ReplyDone,
    SpeechStarted,
    SpeechStopped,
    TextInput,
    ToolCall,
    ToolResult,
    TranscriptFinal,
    TranscriptPartial,
    Wake,
)

from .devices import AudioIO
from .playback import PlaybackBuffer
from .protocol import ConnectionLost, GatewaySession, Reconnecting
from .tones import Cue, tone

log = logging.getLogger(__name__)

HELP = "Type to send text. Commands: /stop (interrupt the reply), /wake on|off, /voice NAME, /quit"
ECHO_REFERENCE_MS = 400  # reference kept ahead of the microphone at most (AEC3 searches about this far)
MIC_QUEUE_FRAMES = 50  # ~2 s: older frames are dropped if the network stalls


class Console:
    """What the user reads: conversation on stdout, connection status on stderr."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.out, self.err = out, err
        self._partial = False

    def line(self, text: str) -> None:
        self._end_partial()
        print(text, file=self.out, flush=True)

    def partial(self, text: str) -> None:
        if self.out.isatty():
            print(f"\r\033[2K  you: {text}…", end="", file=self.out, flush=True)
            self._partial = True

    def stream(self, text: str) -> None:
        print(text, end="", file=self.out, flush=True)

    def status(self, text: str) -> None:
        self._end_partial()
        print(f"[client] {text}", file=self.err, flush=True)

    def _end_partial(self) -> None:
        if self._partial:
            print("\r\033[2K", end="", file=self.out, flush=True)
            self._partial = False


class LiveClient:
    """One conversation, kept alive across gateway restarts."""

    def __init__(self, connector: Reconnecting, audio: AudioIO | None, console: Console, *,
                 tones: bool = True, tone_volume: float = 0.15, prebuffer_ms: int = 80,
                 half_duplex: bool = False, keyboard: bool = True, echo_cancel: bool = False) -> None:
        self.connector = connector
        self.options = connector.options
        self.audio = audio
        self.console = console
        self.tones = tones and audio is not None
        self.tone_volume = tone_volume
        self.half_duplex = half_duplex
        self.keyboard = keyboard
        rate = audio.output_rate if audio else BUS_RATE
        self.playback = PlaybackBuffer(int(rate * prebuffer_ms / 1000), self._on_playback_state)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Microphone frames and playback state, in order: the gateway keeps them in-band.
        self._outgoing: asyncio.Queue[bytes | Message] = asyncio.Queue()
        self._typed: asyncio.Queue[str | None] = asyncio.Queue()
        self._session: GatewaySession | None = None
        self._quit = asyncio.Event()
        self._resampler: soxr.ResampleStream | None = None
        self._reply_open = False
        if audio is not None:
            self.options.sample_rate = audio.input_rate
            self.options.output_sample_rate = audio.output_rate
        self.aec: EchoCanceller | None = None
        self._mic_to_bus: soxr.ResampleStream | None = None
        if audio is not None and echo_cancel:
            self._start_echo_cancel(audio)

    def _start_echo_cancel(self, audio: AudioIO) -> None:
        """Cancel the speaker's echo here: this client knows exactly what it played, and when."""
        try:
            # The speaker callback runs ahead of the sound card by a buffer or two; AEC3 finds that delay.
            self.aec = EchoCanceller(max_queued_ms=ECHO_REFERENCE_MS)
        except ImportError:
            self.console.status("echo cancellation needs the livekit package (pip install 'voicefleet[mic]'); "
                                "the server will cancel the echo instead")
            return
        self.aec.playback_started()  # the reference is the speaker's whole output, silence included
        if audio.input_rate != BUS_RATE:  # AEC3 runs at 16 kHz: the microphone is sent at that rate
            self._mic_to_bus = soxr.ResampleStream(audio.input_rate, BUS_RATE, 1, dtype="int16")
        self.options.sample_rate = BUS_RATE
        self.options.echo_cancelled = True

    # ------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.keyboard:
            threading.Thread(target=self._read_stdin, name="stdin", daemon=True).start()
        if self.audio is not None:
            self.audio.start(self._on_mic, self._speaker)
        conversation = asyncio.create_task(self.connector.run(self._serve), name="conversation")
        quitting = asyncio.create_task(self._quit.wait(), name="quit")
        try:
            # Quitting must also work while the connector waits to reconnect.
            await asyncio.wait([conversation, quitting], return_when=asyncio.FIRST_COMPLETED)
            if conversation.done():
                conversation.result()  # a refused token ends the conversation with its error
        finally:
            for task in (conversation, quitting):
                task.cancel()
            await asyncio.gather(conversation, quitting, return_exceptions=True)
            if self.audio is not None:
                self.audio.stop()

    def quit(self) -> None:
        self._quit.set()

    async def _serve(self, session: GatewaySession) -> None:
        self._session = session
        assert session.ready is not None
        self._announce(session.ready)
        self._drop_outgoing()
        tasks = [
            asyncio.create_task(self._receive(session), name="receive"),
            asyncio.create_task(self._send_outgoing(session), name="outgoing"),
            asyncio.create_task(self._send_typed(session), name="typed"),
            asyncio.create_task(self._quit.wait(), name="quit"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._session = None
            # Audio of a turn the old connection was playing will never end there.
            self.playback.flush()

    def _announce(self, ready: Ready) -> None:
        wake = self.options.wake_word
        if wake is None:
            how = "listening (wake word: the server's default)"
        elif wake:
            how = f"say {wake.replace('_', ' ')!r} to wake me"
        else:
            how = "always listening: just talk"
        if wake and ready.wake_words and wake not in ready.wake_words:
            self.console.status(f"the server does not offer the wake word {wake!r} "
                                f"(it offers: {', '.join(ready.wake_words)})")
        mode = how if self.audio is not None else "text only: type your message"
        self.console.status(f"connected (session {ready.session_id}); {mode}")

    # --------------------------------------------------------------- input
    def clean_mic(self, pcm: bytes) -> bytes:
        """The microphone frame as it is sent: without the speaker's echo when this client cancels it."""
        if self.aec is None:
            return pcm
        mic = np.frombuffer(pcm, dtype=np.int16)
        if self._mic_to_bus is not None:
            mic = self._mic_to_bus.resample_chunk(mic)
        return self.aec.process(mic).tobytes()

    def _speaker(self, count: int) -> bytes:
        """Speaker thread: the next samples to play; they are also the echo canceller's reference."""
        pcm = self.playback.read(count)
        if self.aec is not None and self.audio is not None:
            self.aec.add_reference(np.frombuffer(pcm, dtype=np.int16), self.audio.output_rate)
        return pcm

    def _on_mic(self, pcm: bytes) -> None:
        """Audio thread: hand a microphone frame to the event loop (echo removed first, when we do that)."""
        pcm = self.clean_mic(pcm)
        if not pcm:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._queue_mic, pcm)

    def _queue_mic(self, pcm: bytes) -> None:
        if self._session is None:
            return  # not connected: a live microphone cannot wait
        if self._outgoing.qsize() >= MIC_QUEUE_FRAMES:
            return  # the network stalls: drop live audio rather than fall behind
        if self.half_duplex and self.playback.playing:
            pcm = bytes(len(pcm))
        self._outgoing.put_nowait(pcm)

    def _drop_outgoing(self) -> None:
        while not self._outgoing.empty():
            self._outgoing.get_nowait()

    async def _send_outgoing(self, session: GatewaySession) -> None:
        while True:
            item = await self._outgoing.get()
            if isinstance(item, bytes):
                await session.send_audio(item)
            else:
                await session.send(item)

    def _read_stdin(self) -> None:
        """Keyboard thread: typed lines go to the loop; EOF ends text-only mode."""
        for line in sys.stdin:
            self._post_typed(line.rstrip("\n"))
        self._post_typed(None)

    def _post_typed(self, line: str | None) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._typed.put_nowait, line)

    async def _send_typed(self, session: GatewaySession) -> None:
        while True:
            line = await self._typed.get()
            if line is None:
                if self.audio is None:
                    self.quit()
                await self._quit.wait()  # stdin closed: the microphone goes on
                return
            await self._command(session, line.strip())

    async def _command(self, session: GatewaySession, line: str) -> None:
        if not line:
            return
        if line in ("/quit", "/exit"):
            self.quit()
        elif line == "/stop":
            await session.send(Interrupt())
        elif line in ("/help", "/?"):
            self.console.status(HELP)
        elif line.startswith("/wake"):
            on = line.split()[1:2] != ["off"]
            word = self.options.wake_word or "hey_jarvis"
            await session.send(Configure(wake_word=word) if on else Configure(listen_always=True))
            self.options.wake_word = word if on else ""
            self.console.status(f"wake word {word!r} on" if on else "wake word off: always listening")
        elif line.startswith("/voice"):
            voice = line.partition(" ")[2].strip()
            await session.send(Configure(voice=voice))
            self.options.voice = voice or None
        elif line.startswith("/"):
            self.console.status(f"unknown command {line.split()[0]!r}. {HELP}")
        else:
            self.console.line(f"  you: {line}")
            await session.send(TextInput(text=line))

    # -------------------------------------------------------------- output
    async def _receive(self, session: GatewaySession) -> None:
        async for item in session.items():
            if isinstance(item, bytes):
                self._play(item)
            else:
                self.on_event(item)
        raise ConnectionLost("the gateway closed the connection")

    def _play(self, pcm: bytes) -> None:
        if self.audio is None:
            return
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(np.frombuffer(pcm, dtype=np.int16)).tobytes()
        self.playback.push(pcm)

    def on_event(self, msg: Message) -> None:
        c = self.console
        if isinstance(msg, Wake):
            self._cue("listening")
            c.status(f"wake word {msg.word.replace('_', ' ')!r} heard")
        elif isinstance(msg, SpeechStarted):
            self._cue("listening")
        elif isinstance(msg, SpeechStopped):
            self._cue("thinking")
        elif isinstance(msg, TranscriptPartial):
            c.partial(msg.text)
        elif isinstance(msg, TranscriptFinal):
            c.line(f"  you: {msg.text}")
        elif isinstance(msg, ReplyDelta):
            if not self._reply_open:
                c.stream("  assistant: ")
                self._reply_open = True
            c.stream(msg.text)
        elif isinstance(msg, ReplyDone):
            if self._reply_open:
                c.stream("\n")
            elif msg.text:
                c.line(f"  assistant: {msg.text}")
            self._reply_open = False
        elif isinstance(msg, ToolCall):
            c.status(f"tool {msg.name} …")
        elif isinstance(msg, ToolResult):
            c.status(f"tool {msg.name}: {'done' if msg.ok else 'failed'}" + (f" ({msg.text[:80]})" if msg.text else ""))
        elif isinstance(msg, AudioStart):
            rate = self.audio.output_rate if self.audio else msg.sample_rate
            self._resampler = (soxr.ResampleStream(msg.sample_rate, rate, 1, dtype="int16")
                               if msg.sample_rate != rate else None)
            self.playback.begin()
        elif isinstance(msg, AudioEnd):
            self.playback.end()
        elif isinstance(msg, Interrupted):
            self.playback.flush()  # at once: the user is talking
            if self._reply_open:
                c.stream(" …\n")
                self._reply_open = False
            if msg.reason not in ("new_turn", "session_closed"):
                c.status("interrupted")
        elif isinstance(msg, Notice):
            c.status(msg.message)
        elif isinstance(msg, Error):
            c.status(f"error: {msg.message}")

    def _cue(self, cue: Cue) -> None:
        if self.tones and self.audio is not None:
            self.playback.cue(tone(cue, self.audio.output_rate, self.tone_volume))

    def _on_playback_state(self, playing: bool) -> None:
        """Speaker thread (or loop): tell the gateway when the speaker starts or stops."""
        if self._loop is None or self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._send_playback_state, playing)

    def _send_playback_state(self, playing: bool) -> None:
        if self._session is not None:
            self._outgoing.put_nowait(PlaybackStarted() if playing else PlaybackFinished())
