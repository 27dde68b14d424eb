"""Audio files at the HTTP door, through FFmpeg's libraries (PyAV): uploads decoded, speech encoded as it streams.

No codec is written here: PyAV decodes whatever FFmpeg reads (WAV, FLAC, MP3,
Ogg/Opus, M4A, WebM...) into the bus format, and its muxers write each output
format to a non-seekable sink, so the bytes of a file leave as soon as their
packets are made (a streamed file's header cannot hold its final length: WAV
says 0xFFFFFFFF, FLAC leaves its sample count at 0, as every streamed file does).
Both run in a thread: a long file must not hold the event loop.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from voicefleet.audio import BUS_RATE

#: ``response_format`` of ``/v1/audio/speech`` -> (container, codec, media type). ``pcm`` is raw, no container.
FORMATS: dict[str, tuple[str, str, str]] = {
    "wav": ("wav", "pcm_s16le", "audio/wav"),
    "flac": ("flac", "flac", "audio/flac"),
    "mp3": ("mp3", "libmp3lame", "audio/mpeg"),
    "opus": ("ogg", "libopus", "audio/ogg"),
    "aac": ("adts", "aac", "audio/aac"),
}
PCM_MEDIA_TYPE = "audio/pcm"
#: Ogg pages every 100 ms instead of FFmpeg's 1 s, so Opus streams as it is made.
_CONTAINER_OPTIONS = {"ogg": {"page_duration": "100000"}}


class AudioFileError(ValueError):
    """An upload that is not audio FFmpeg can read (the message says why)."""


def decode_upload(data: bytes, rate: int = BUS_RATE) -> np.ndarray:
    """Any audio file FFmpeg reads, as int16 mono at ``rate`` (the first audio stream; channels mixed down)."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioFileError("the file has no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            parts: list[np.ndarray] = []
            for frame in container.decode(audio=0):
                frame.pts = None  # the resampler keeps its own timeline (some files' pts jump)
                parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except av.FFmpegError as exc:
        raise AudioFileError(f"the file could not be read as audio ({exc})") from None
    return np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, dtype=np.int16)


class _Sink(io.RawIOBase):
    """Where the muxer writes: bytes collected until taken, never seekable (so nothing is rewritten later)."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.pending += data
        return len(data)

    def take(self) -> bytes:
        out, self.pending = bytes(self.pending), bytearray()
        return out


@dataclass
class Encoder:
    """Encodes PCM16 mono at ``rate`` into ``fmt`` piece by piece: :meth:`push` then :meth:`finish`."""

    fmt: str
    rate: int

    def __post_init__(self) -> None:
        self._raw = self.fmt == "pcm"
        if self._raw:
            return
        container, codec, _ = FORMATS[self.fmt]
        self._sink = _Sink()
        self._out = av.open(self._sink, mode="w", format=container, options=_CONTAINER_OPTIONS.get(container, {}))
        self._stream = self._out.add_stream(codec, rate=self.rate, layout="mono")  # type: ignore[call-overload]
        self._resampler = av.AudioResampler(format=self._stream.codec_context.format, layout="mono", rate=self.rate)

    @property
    def media_type(self) -> str:
        return PCM_MEDIA_TYPE if self._raw else FORMATS[self.fmt][2]

    def push(self, pcm: bytes) -> bytes:
        """Bytes of the file ready after ``pcm`` (possibly none yet: codecs work in frames)."""
        if self._raw:
            return pcm
        if pcm:
            frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, dtype="<i2").reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate = self.rate
            self._encode(self._resampler.resample(frame))
        return self._sink.take()

    def finish(self) -> bytes:
        """The rest of the file: codec delay flushed, trailer written."""
        if self._raw:
            return b""
        self._encode(self._resampler.resample(None))
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        return self._sink.take()

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
