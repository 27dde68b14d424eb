"""``python -m audio_client``: talk to the assistant from a laptop, or run headless turns."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from voicefleet.logs import setup_logging

from .protocol import ClientError, Reconnecting, StartOptions, UsageError
from .settings import ClientSettings

log = logging.getLogger("audio_client")

EPILOG = """\
modes:
  live (default)   microphone and speaker; reconnects when the gateway restarts
  --text-only      no audio devices: type your messages, read the replies
  --wav / --text   headless: one turn per --wav or --text, then exit
  --list-devices   print the audio devices and exit

exit codes: 0 ok, 1 a turn failed or timed out, 2 bad usage or no audio device,
            3 token refused, 4 gateway unreachable or connection lost

Settings also come from VF_CLIENT_* environment variables and .env
(for example VF_CLIENT_TOKEN, VF_CLIENT_GATEWAY); the command line wins.
"""


def parse_args(argv: list[str] | None, settings: ClientSettings) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m audio_client",
        description="Talk to the voicefleet assistant through its gateway.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--gateway", default=settings.gateway, help=f"gateway URL (default {settings.gateway})")
    p.add_argument("--token", help="JWT (default: VF_CLIENT_TOKEN)")
    p.add_argument("--wake-word", default=settings.wake_word,
                   help="wake word, e.g. hey_jarvis; 'none' = always listening (default: the server's)")
    p.add_argument("--voice", default=settings.voice, help="reply voice (one the server lists)")
    p.add_argument("--speech-rate", type=float, default=settings.speech_rate, help="reply speech rate")
    p.add_argument("--language", default=settings.language, help="language hint for the recognizer, e.g. en")
    p.add_argument("-v", "--verbose", action="store_true", help="log the client's diagnostics")

    live = p.add_argument_group("live mode")
    live.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    live.add_argument("--input-device", default=settings.input_device, help="microphone: index or part of its name")
    live.add_argument("--output-device", default=settings.output_device, help="speaker: index or part of its name")
    live.add_argument("--no-tones", dest="tones", action="store_false", default=settings.tones,
                      help="no 'listening'/'thinking' tones")
    live.add_argument("--no-echo-cancel", dest="echo_cancel", action="store_false", default=settings.echo_cancel,
                      help="send the microphone as it is (the server cancels the echo with the reply it sent)")
    live.add_argument("--half-duplex", action="store_true", default=settings.half_duplex,
                      help="mute the microphone while a reply plays (speakers without echo cancellation)")
    live.add_argument("--text-only", action="store_true", help="no microphone or speaker: type and read")

    headless = p.add_argument_group("headless mode")
    # --wav and --text share one list so that turns keep the order they were given in.
    headless.add_argument("--wav", dest="inputs", action="append", default=[], metavar="IN.wav",
                          type=lambda v: ("wav", Path(v)), help="speech to send (repeat for several turns)")
    headless.add_argument("--text", dest="inputs", action="append", metavar="TEXT",
                          type=lambda v: ("text", v), help="typed text to send (repeat for several turns)")
    headless.add_argument("--out", type=Path, metavar="REPLY.wav",
                          help="save the reply audio (several turns: REPLY-1.wav, REPLY-2.wav...)")
    headless.add_argument("--out-rate", type=int, default=0,
                          help="rate of the saved reply and of the reply audio asked for (default 16000, the bus rate)")
    headless.add_argument("--fast", action="store_true", help="stream the WAV faster than real time")
    headless.add_argument("--json", action="store_true", help="print one JSON object per turn")
    headless.add_argument("--timeout", type=float, default=settings.turn_timeout_s,
                          help=f"seconds to wait for each reply (default {settings.turn_timeout_s:g})")
    headless.add_argument("--trailing-silence", type=float, default=settings.trailing_silence_s,
                          help=f"seconds of silence after each WAV (default {settings.trailing_silence_s:g})")
    return p.parse_args(argv)


def start_options(args: argparse.Namespace) -> StartOptions:
    wake = args.wake_word
    if wake is not None and wake.lower() in ("none", "off", ""):
        wake = ""
    return StartOptions(wake_word=wake, voice=args.voice, speech_rate=args.speech_rate, language=args.language)


def main(argv: list[str] | None = None) -> int:
    settings = ClientSettings()
    args = parse_args(argv, settings)
    setup_logging("client", "DEBUG" if args.verbose else settings.log_level)
    try:
        if args.list_devices:
            from .devices import describe_devices, list_devices

            print(describe_devices(list_devices()))
            return 0
        token = args.token or (settings.token.get_secret_value() if settings.token else "")
        if not token:
            raise UsageError("no token: pass --token or set VF_CLIENT_TOKEN "
                              "(`python -m gateway token --sub me` mints one)")
        if args.inputs:
            from .report import run_headless

            return asyncio.run(run_headless(args, token, start_options(args), settings))
        return asyncio.run(run_live(args, token, settings))
    except ClientError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


async def run_live(args: argparse.Namespace, token: str, settings: ClientSettings) -> int:
    from .live import Console, LiveClient

    console = Console()
    audio = None
    if not args.text_only:
        from .devices import PyAudioIO

        audio = PyAudioIO(args.input_device, args.output_device, frame_ms=settings.frame_ms)
    connector = Reconnecting(
        args.gateway, token, start_options(args),
        open_timeout_s=settings.connect_timeout_s,
        first_delay_s=settings.reconnect_first_s,
        max_delay_s=settings.reconnect_max_s,
        on_status=console.status,
    )
    client = LiveClient(connector, audio, console, tones=args.tones, tone_volume=settings.tone_volume,
                        prebuffer_ms=settings.prebuffer_ms, half_duplex=args.half_duplex,
                        echo_cancel=args.echo_cancel)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, client.quit)
    try:
        await client.run()
    finally:
        if audio is not None:
            audio.close()
    console.status("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
