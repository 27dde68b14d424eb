"""Pure logic of the client: URLs, WAV handling, the end of speech, tones, the playback buffer."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from speech import say, silence, write_wav

from audio_client import wav
from audio_client.playback import PlaybackBuffer
from audio_client.protocol import UsageError, ws_url
from audio_client.tones import tone


@pytest.mark.parametrize(
    "given, expected",
    [
        ("ws://127.0.0.1:8080", "ws://127.0.0.1:8080/v1/ws/audio"),
        ("http://host:8080/", "ws://host:8080/v1/ws/audio"),
        ("https://assistant.example.org", "wss://assistant.example.org/v1/ws/audio"),
        ("127.0.0.1:8080", "ws://127.0.0.1:8080/v1/ws/audio"),
        ("wss://h/custom/path?x=1", "wss://h/custom/path?x=1"),
    ],
)
def test_gateway_urls_become_websocket_urls(given: str, expected: str) -> None:
    assert ws_url(given) == expected


def test_a_bad_gateway_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a gateway URL"):
        ws_url("ftp://nowhere")


def test_speech_end_is_found_in_the_recording() -> None:
    audio = np.concatenate([silence(0.5), say("Hello there."), silence(1.0)])
    end = wav.speech_end(audio, 16000)
    spoken_until = 0.5 + len(say("Hello there.")) / 16000
    assert end is not None and spoken_until - 0.3 < end <= spoken_until + 0.02
    assert wav.speech_end(silence(1.0), 16000) is None
    assert wav.speech_end(np.zeros(0, np.int16), 16000) is None


def test_wavs_are_read_as_16k_mono_whatever_they_were(tmp_path: Path) -> None:
    speech = say("Testing.", rate=22050)
    stereo = np.stack([speech, speech], axis=1).reshape(-1)
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(stereo.astype(np.int16).tobytes())
    samples = wav.read_wav(path)
    assert samples.dtype == np.int16
    assert abs(len(samples) - len(speech) * 16000 / 22050) < 50
    assert np.abs(samples).max() > 1000
    plain = wav.read_wav(write_wav(tmp_path / "plain.wav", say("Testing.")))
    assert np.array_equal(plain, say("Testing."))


def test_a_missing_or_bogus_wav_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        wav.read_wav(tmp_path / "nope.wav")
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"not a wav at all")
    with pytest.raises(UsageError, match="not a PCM WAV"):
        wav.read_wav(bogus)


def test_resample_keeps_duration_and_write_wav_round_trips(tmp_path: Path) -> None:
    pcm = say("One two.").tobytes()
    up = wav.resample(pcm, 16000, 24000)
    assert abs(len(up) / 2 / 24000 - len(pcm) / 2 / 16000) < 0.01
    assert wav.resample(pcm, 16000, 16000) == pcm
    back = wav.read_wav(wav.write_wav(tmp_path / "sub" / "x.wav", up, 24000), rate=24000)
    assert back.tobytes() == up


def test_tones_are_short_soft_and_click_free() -> None:
    for cue in ("listening", "thinking"):
        samples = np.frombuffer(tone(cue, 22050, 0.15), dtype=np.int16)  # type: ignore[arg-type]
        assert 0.1 < len(samples) / 22050 < 0.3
        assert 0.1 * 32767 < np.abs(samples).max() <= 0.15 * 32767 + 1
        assert abs(int(samples[0])) < 200 and abs(int(samples[-1])) < 200
    assert tone("listening", 16000) != tone("thinking", 16000)


class States:
    def __init__(self) -> None:
        self.seen: list[bool] = []

    def __call__(self, playing: bool) -> None:
        self.seen.append(playing)


def pcm(n: int, value: int = 1000) -> bytes:
    return np.full(n, value, np.int16).tobytes()


def test_playback_waits_for_the_prebuffer_then_plays_out_and_reports_state() -> None:
    states = States()
    buf = PlaybackBuffer(prebuffer_samples=300, on_state=states)
    buf.begin()
    buf.push(pcm(200))
    assert buf.read(100) == bytes(200) and states.seen == []  # still buffering
    buf.push(pcm(200))
    out = np.frombuffer(buf.read(350), np.int16)
    assert (out == 1000).all() and states.seen == [True]
    buf.end()
    rest = np.frombuffer(buf.read(100), np.int16)
    assert (rest[:50] == 1000).all() and (rest[50:] == 0).all()
    assert states.seen == [True, False] and not buf.playing and buf.played == 400


def test_a_short_reply_plays_even_below_the_prebuffer() -> None:
    states = States()
    buf = PlaybackBuffer(prebuffer_samples=10_000, on_state=states)
    buf.begin()
    buf.push(pcm(100))
    buf.end()
    out = np.frombuffer(buf.read(150), np.int16)
    assert (out[:100] == 1000).all() and (out[100:] == 0).all()
    assert states.seen == [True, False]


def test_flush_drops_everything_at_once() -> None:
    states = States()
    buf = PlaybackBuffer(prebuffer_samples=0, on_state=states)
    buf.begin()
    buf.push(pcm(16000))
    buf.read(160)
    assert buf.flush() is True and states.seen == [True, False]
    assert buf.read(160) == bytes(320) and buf.queued == 0
    assert buf.flush() is False and states.seen == [True, False]


def test_tones_mix_over_reply_audio_without_counting_as_playback() -> None:
    states = States()
    buf = PlaybackBuffer(on_state=states)
    buf.cue(pcm(50, 500))
    out = np.frombuffer(buf.read(100), np.int16)
    assert (out[:50] == 500).all() and (out[50:] == 0).all() and states.seen == []
    buf.begin()
    buf.push(pcm(100, 32000))
    buf.cue(pcm(100, 32000))
    assert (np.frombuffer(buf.read(100), np.int16) == 32767).all()  # clipped, not wrapped


def test_live_client_cancels_the_echo_of_what_it_played_and_says_so() -> None:
    """The laptop client's own AEC3: its speaker's output is the reference; `start` tells the server."""
    import io

    import soxr

    from audio_client.live import Console, LiveClient
    from audio_client.protocol import Reconnecting, StartOptions

    class Devices:  # rates only: the test plays the speaker and microphone callbacks itself
        input_rate, output_rate = 48000, 22050

        def start(self, on_mic: object, speaker: object) -> None: ...

        def stop(self) -> None: ...

    connector = Reconnecting("ws://127.0.0.1:9", "token", StartOptions(wake_word=""))
    console = Console(io.StringIO(), io.StringIO())
    client = LiveClient(connector, Devices(), console, keyboard=False, echo_cancel=True)  # type: ignore[arg-type]
    start = connector.options.message()
    assert start.echo_cancelled and start.sample_rate == 16000

    reply = say("The forecast for tomorrow is sunny with a light breeze from the west in the afternoon.", 22050)
    client.playback.begin()
    client.playback.push(reply.tobytes())
    client.playback.end()
    tick_out, tick_in = 441, 960  # 20 ms of speaker at 22.05 kHz, of microphone at 48 kHz
    late = 4  # the room returns the speaker's sound 80 ms later, 6 dB down
    played: list[np.ndarray] = []
    heard, sent = [], []
    for _ in range(reply.size // tick_out + late):
        played.append(np.frombuffer(client._speaker(tick_out), dtype=np.int16))
        echo = played[-late] if len(played) >= late else np.zeros(tick_out, np.int16)
        mic = soxr.resample(echo, 22050, 48000).astype(np.float32)[:tick_in] * 0.5
        mic = np.pad(mic, (0, tick_in - mic.size)).astype(np.int16)
        heard.append(mic)
        sent.append(np.frombuffer(client.clean_mic(mic.tobytes()), dtype=np.int16))

    def rms_db(x: np.ndarray) -> float:
        return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9))

    after_1s = slice(16000, None)  # AEC3 converges within the first second
    out = np.concatenate(sent)
    echo_in = soxr.resample(np.concatenate(heard), 48000, 16000)
    assert rms_db(out[after_1s]) < rms_db(echo_in[after_1s]) - 20

    # Without echo cancellation the microphone goes out as it is, at its own rate.
    plain = LiveClient(Reconnecting("ws://127.0.0.1:9", "t", StartOptions()), Devices(), console, keyboard=False)
    assert plain.clean_mic(b"\x01\x00" * 960) == b"\x01\x00" * 960
    assert not plain.options.message().echo_cancelled and plain.options.sample_rate == 48000
