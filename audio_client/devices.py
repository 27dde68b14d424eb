"""Microphone and speaker through PyAudio (PortAudio), imported only when needed.

Headless mode and the tests never import PyAudio. Both streams run in
PortAudio's callback mode: the microphone callback hands each frame to
``on_mic`` and the speaker callback pulls its samples from ``speaker`` (the
playback buffer), so neither ever waits on the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Protocol

import numpy as np
import soxr

from voicefleet.audio import BUS_RATE

from .protocol import ClientError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install PortAudio and PyAudio: `sudo apt-get install portaudio19-dev` then "
    "`pip install pyaudio` (or `pip install 'voicefleet[mic]'`)"
)


class AudioUnavailable(ClientError):
    """No usable microphone or speaker (or no PyAudio)."""

    exit_code = 2


@dataclass(frozen=True)
class Device:
    """One PortAudio device."""

    index: int
    name: str
    inputs: int
    outputs: int
    default_rate: int
    host_api: str = ""


class AudioIO(Protocol):
    """What the live client needs from audio hardware (PyAudio, or a test double)."""

    input_rate: int
    output_rate: int

    def start(self, on_mic: Callable[[bytes], None], speaker: Callable[[int], bytes]) -> None: ...

    def stop(self) -> None: ...


def pyaudio_module() -> ModuleType:
    try:
        import pyaudio
    except ImportError:
        raise AudioUnavailable(f"PyAudio is not installed: {INSTALL_HINT}") from None
    module: ModuleType = pyaudio
    return module


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hide the ALSA/JACK chatter PortAudio prints while it probes devices."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _portaudio() -> Any:
    pyaudio = pyaudio_module()
    with quiet_stderr():
        return pyaudio.PyAudio()


def list_devices() -> list[Device]:
    pa = _portaudio()
    try:
        return _devices(pa)
    finally:
        pa.terminate()


def _devices(pa: Any) -> list[Device]:
    found = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        api = pa.get_host_api_info_by_index(info["hostApi"])["name"]
        found.append(Device(index, info["name"], int(info["maxInputChannels"]),
                            int(info["maxOutputChannels"]), int(info["defaultSampleRate"]), api))
    return found


def describe_devices(devices: list[Device]) -> str:
    if not devices:
        return "No audio devices found."
    lines = [f"{'#':>3}  {'in':>3} {'out':>3}  {'rate':>6}  name"]
    for d in devices:
        lines.append(f"{d.index:>3}  {d.inputs:>3} {d.outputs:>3}  {d.default_rate:>6}  {d.name} ({d.host_api})")
    return "\n".join(lines)


def choose(devices: list[Device], wanted: str | None, kind: Literal["input", "output"],
           default_index: int | None) -> Device:
    """The device named by ``wanted`` (an index or part of a name), else the default one."""
    usable = [d for d in devices if (d.inputs if kind == "input" else d.outputs) > 0]
    what = "microphone" if kind == "input" else "speaker"
    if not usable:
        raise AudioUnavailable(
            f"no {what} found. Plug one in (see `--list-devices`), or use --wav/--text for headless mode, "
            "or --text-only to chat without audio."
        )
    if wanted is None or wanted == "":
        for d in usable:
            if d.index == default_index:
                return d
        return usable[0]
    if wanted.isdigit():
        for d in usable:
            if d.index == int(wanted):
                return d
        raise AudioUnavailable(f"there is no {what} with index {wanted}; see `--list-devices`")
    matches = [d for d in usable if wanted.lower() in d.name.lower()]
    if not matches:
        raise AudioUnavailable(f"no {what} matches {wanted!r}; see `--list-devices`")
    return matches[0]


class PyAudioIO:
    """Microphone and speaker streams in PortAudio callback mode.

    The microphone is opened at ``mic_rate`` when the device allows it, else
    at its own rate and resampled here (soxr) so the gateway always gets
    ``mic_rate``. The speaker runs at its default rate; the caller asks the
    server for reply audio at :attr:`output_rate`.
    """

    def __init__(self, input_device: str | None, output_device: str | None,
                 mic_rate: int = BUS_RATE, frame_ms: int = 40) -> None:
        self._pa = _portaudio()
        self._pyaudio = pyaudio_module()
        devices = _devices(self._pa)
        self.mic = choose(devices, input_device, "input", self._default("input"))
        self.speaker = choose(devices, output_device, "output", self._default("output"))
        self.input_rate = mic_rate
        # The gateway takes output rates up to 48 kHz; every device plays 48 kHz.
        self.output_rate = min(self.speaker.default_rate or 48000, 48000)
        self.frame_ms = frame_ms
        self._streams: list[Any] = []

    def _default(self, kind: str) -> int | None:
        try:
            info = (self._pa.get_default_input_device_info() if kind == "input"
                    else self._pa.get_default_output_device_info())
            return int(info["index"])
        except OSError:
            return None

    def start(self, on_mic: Callable[[bytes], None], speaker: Callable[[int], bytes]) -> None:
        pa, pyaudio = self._pa, self._pyaudio
        device_rate = self._mic_rate()
        resampler = (soxr.ResampleStream(device_rate, self.input_rate, 1, dtype="int16")
                     if device_rate != self.input_rate else None)

        def mic_callback(data: bytes, frames: int, _time: Any, _status: int) -> tuple[None, int]:
            if resampler is not None:
                data = resampler.resample_chunk(np.frombuffer(data, dtype=np.int16)).tobytes()
            if data:
                on_mic(data)
            return None, pyaudio.paContinue

        def speaker_callback(_in: Any, frames: int, _time: Any, _status: int) -> tuple[bytes, int]:
            return speaker(frames), pyaudio.paContinue

        try:
            with quiet_stderr():
                self._streams.append(pa.open(
                    format=pyaudio.paInt16, channels=1, rate=self.output_rate, output=True,
                    output_device_index=self.speaker.index,
                    frames_per_buffer=int(self.output_rate * 0.02), stream_callback=speaker_callback))
                self._streams.append(pa.open(
                    format=pyaudio.paInt16, channels=1, rate=device_rate, input=True,
                    input_device_index=self.mic.index,
                    frames_per_buffer=int(device_rate * self.frame_ms / 1000), stream_callback=mic_callback))
        except OSError as exc:
            self.stop()
            raise AudioUnavailable(f"cannot open the audio devices ({exc}); see `--list-devices`") from None
        log.info("microphone %r at %d Hz, speaker %r at %d Hz",
                 self.mic.name, device_rate, self.speaker.name, self.output_rate)

    def _mic_rate(self) -> int:
        """``input_rate`` when the microphone supports it, else the device's own rate."""
        try:
            with quiet_stderr():
                self._pa.is_format_supported(self.input_rate, input_device=self.mic.index, input_channels=1,
                                             input_format=self._pyaudio.paInt16)
            return self.input_rate
        except ValueError:
            return self.mic.default_rate

    def stop(self) -> None:
        for stream in self._streams:
            with contextlib.suppress(OSError):
                stream.stop_stream()
                stream.close()
        self._streams.clear()

    def close(self) -> None:
        self.stop()
        self._pa.terminate()
