"""The per-session turn state machine: pure logic fed with audio chunks and model scores.

It knows nothing of Redis or models: the listener feeds it every 32 ms chunk
with Silero's speech probability, and every wake word score; it answers with
:class:`Action` objects (events to emit, audio to transcribe). That keeps the
endpointing rules testable with made-up probabilities.

Timeline of one utterance::

    speech ....... silence onset --(speculate_after)--> Speculate --(eot)--> SpeechEnd + Final
        ^ SpeechStart (audio_ms = onset)   ^ speech resumes here? -> Discard

The final transcript's audio is fixed at silence onset + ``speculate_after``,
so the speculative transcription started then is exactly the final one if the
user stays quiet; the end-of-turn decision then only has to wait for it.

How long the silence must last (``eot``) is fixed (``eot_silence_ms``) without
an end-of-turn model. With one (an injected callable: audio of the utterance
so far -> probability that the user has finished, smart-turn v3 in the
worker), it is asked once in each pause, after ``endpoint_after_ms`` (96) of
silence (right at the onset it hears too little of the pause and calls many
finished commands unfinished): "complete" ends the turn
after ``eot_complete_ms`` (200), "incomplete" waits ``eot_incomplete_ms``
(900), so a pause inside a sentence does not end it. Should the model call a
sentence complete too early and the user go on within ``eot_incomplete_ms``,
the new utterance *continues* the ended one (``SpeechStart.continues``): its
audio starts where the ended one started, so the final transcript holds the
whole sentence and the session drops the half one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from voicefleet.audio import BUS_RATE

from .audio import AudioHistory, level_db
from .echo import EchoGuard
from .settings import SttSettings

CHUNK = 512


@dataclass(frozen=True)
class TurnConfig:
    """Endpointing, wake word and echo rules (times in ms unless named _s)."""

    vad_threshold: float = 0.5
    min_speech_ms: int = 200
    eot_silence_ms: int = 450
    #: With an end-of-turn model: the silence that ends a turn it calls complete, and one it calls incomplete.
    eot_complete_ms: int = 200
    eot_incomplete_ms: int = 900
    endpoint_threshold: float = 0.5
    endpoint_after_ms: int = 96
    speculate_after_ms: int = 160
    pre_roll_ms: int = 300
    max_utterance_s: float = 25.0
    partial_interval_ms: int = 1000
    #: Gaps this short do not break a starting run of speech.
    onset_gap_ms: int = 100
    wake_threshold: float = 0.5
    wake_cooldown_s: float = 2.0
    follow_up_s: float = 8.0
    echo_vad_threshold: float = 0.85
    echo_min_speech_ms: int = 192
    #: ...counted within this window (speech over the echo is loud only in its syllables).
    echo_window_ms: int = 800
    echo_margin_db: float = 6.0
    echo_tail_ms: int = 300
    echo_warmup_ms: int = 500
    #: With the echo cancelled (voicefleet/aec.py) the guard judges the cleaned signal: Silero's usual
    #: threshold, this many dB above what is left of the echo, for this long in the window.
    aec_vad_threshold: float = 0.5
    aec_margin_db: float = 6.0
    aec_min_speech_ms: int = 192
    #: Double talk: a chunk from which the canceller took at most ``aec_near_db`` (its level before and after
    #: differ by no more) is the person's voice, not the echo's rest, once the canceller removes at least
    #: ``aec_erle_db`` from the echo (median over recent playback); such chunks start speech after
    #: ``aec_fast_speech_ms``, and are never learned as the echo's level.
    aec_near_db: float = 6.0
    aec_erle_db: float = 20.0
    aec_fast_speech_ms: int = 96

    @property
    def vad_neg_threshold(self) -> float:
        # Hysteresis as in Silero's own segmenter: speech ends only well below the start threshold.
        return max(0.05, self.vad_threshold - 0.15)

    @classmethod
    def from_settings(cls, s: SttSettings) -> TurnConfig:
        return cls(
            vad_threshold=s.vad_threshold,
            min_speech_ms=s.min_speech_ms,
            eot_silence_ms=s.eot_silence_ms,
            eot_complete_ms=s.eot_complete_ms,
            eot_incomplete_ms=s.eot_incomplete_ms,
            endpoint_threshold=s.endpoint_threshold,
            endpoint_after_ms=min(s.endpoint_after_ms, s.eot_complete_ms),
            speculate_after_ms=min(
                s.speculate_after_ms, s.eot_complete_ms if s.eot_mode == "model" else s.eot_silence_ms
            ),
            pre_roll_ms=s.pre_roll_ms,
            max_utterance_s=s.max_utterance_s,
            partial_interval_ms=s.partial_interval_ms,
            wake_threshold=s.wake_threshold,
            wake_cooldown_s=s.wake_cooldown_s,
            follow_up_s=s.follow_up_s,
            echo_vad_threshold=s.echo_vad_threshold,
            echo_min_speech_ms=s.echo_min_speech_ms,
            echo_window_ms=s.echo_window_ms,
            echo_margin_db=s.echo_margin_db,
            echo_tail_ms=s.echo_tail_ms,
            echo_warmup_ms=s.echo_warmup_ms,
            aec_vad_threshold=s.aec_vad_threshold,
            aec_margin_db=s.aec_margin_db,
            aec_min_speech_ms=s.aec_min_speech_ms,
            aec_near_db=s.aec_near_db,
            aec_erle_db=s.aec_erle_db,
            aec_fast_speech_ms=s.aec_fast_speech_ms,
        )


def ms(samples: int) -> float:
    return samples * 1000.0 / BUS_RATE


def samples(milliseconds: float) -> int:
    return round(milliseconds * BUS_RATE / 1000.0)


# --------------------------------------------------------------------------- actions


@dataclass
class Action:
    """Something the session must do; ``position`` is in samples of the session's input."""

    position: int


@dataclass
class WakeDetected(Action):
    word: str = ""
    score: float = 0.0


@dataclass
class SpeechStart(Action):
    utterance: int = 0
    #: Started while the assistant was audible: judged by the echo guard, and a barge-in.
    over_playback: bool = False
    #: The utterance this one carries on (ended early on the model's word, then the user went on); 0 = none.
    continues: int = 0


@dataclass
class SpeechEnd(Action):
    utterance: int = 0
    reason: Literal["silence", "max_length"] = "silence"


@dataclass
class Partial(Action):
    """Transcribe what was said so far, if the engine is free (skip otherwise)."""

    utterance: int = 0
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16), repr=False)


@dataclass
class Speculate(Action):
    """Silence began: start the final transcription now; it stands unless Discard follows."""

    utterance: int = 0
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16), repr=False)


@dataclass
class Discard(Action):
    """Speech resumed: the speculative transcription of ``utterance`` is void."""

    utterance: int = 0


@dataclass
class Final(Action):
    """End of turn: the utterance's final transcript is wanted (same audio as its Speculate)."""

    utterance: int = 0
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16), repr=False)
    speech_end: int = 0  # acoustic end of speech (samples)
    voiced_ms: float = 0.0
    speculated: bool = False


@dataclass
class Asleep(Action):
    """The follow-up window closed: the wake word is needed again."""


# --------------------------------------------------------------------------- machine


@dataclass
class _Utterance:
    number: int
    audio_start: int  # first sample sent to the recognizer (pre-roll included)
    speech_start: int
    voiced: int = 0
    silence_start: int | None = None
    speculated: bool = False
    last_partial: int = 0
    #: The end-of-turn model's verdict on the current pause (None: no model, or speaking).
    complete: bool | None = None


@dataclass
class _Ended:
    """An utterance ended on the model's "complete": speech before ``until`` carries it on."""

    number: int
    audio_start: int
    voiced: int
    until: int


#: Audio of the utterance so far (int16) -> probability that the speaker has finished their turn.
Endpoint = Callable[[np.ndarray], float]


class TurnDetector:
    """Wake gating, speech start/stop, speculation, and the echo guard for one session."""

    def __init__(self, config: TurnConfig, wake_word: str | None = None, endpoint: Endpoint | None = None) -> None:
        self.config = config
        self.wake_word = wake_word
        self.endpoint = endpoint
        self._ended: _Ended | None = None
        self.position = 0
        self.history = AudioHistory()
        self.utterance: _Utterance | None = None
        self._count = 0
        # onset candidate (speech seen, not yet long enough)
        self._cand_start: int | None = None
        self._cand_voiced = 0
        self._cand_near = 0  # of those, samples the canceller left nearly whole (the person, double talk)
        self._cand_gap = 0
        # wake word
        self._awake_until: int | None = None
        self._wake_floor = 0  # audio before this belongs to the wake word
        self._cooldown_until = 0
        # playback / echo
        self.playing = False
        #: The input is cleaned by an echo canceller fed with the reply: no echo-level test needed.
        self.echo_cancelled = False
        self._echo_until = 0
        chunk_ms = ms(CHUNK)
        self._over_echo: deque[tuple[int, bool, bool]] = deque(maxlen=max(1, int(config.echo_window_ms / chunk_ms)))
        self.echo = EchoGuard(
            vad_threshold=config.echo_vad_threshold,
            margin_db=config.echo_margin_db,
            warmup_chunks=max(1, int(config.echo_warmup_ms / chunk_ms)),
        )

    # ---- state --------------------------------------------------------
    @property
    def gated(self) -> bool:
        """True while a wake word is required and has not been heard (or the window closed)."""
        return self.wake_word is not None and self._awake_until is None

    @property
    def echo_possible(self) -> bool:
        return self.playing or self.position < self._echo_until

    def set_wake_word(self, word: str | None) -> None:
        if word == self.wake_word:
            return
        self.wake_word = word
        if word is not None and self.utterance is None:
            self._awake_until = None  # a new wake word takes effect at once

    def wake(self) -> None:
        """Start awake, as if the wake word was just heard (a new owner replaying a session's audio)."""
        if self.wake_word is not None:
            self._awake_until = self.position + samples(self.config.follow_up_s * 1000)

    def set_playback(self, playing: bool) -> None:
        if playing == self.playing:
            return
        self.playing = playing
        if not playing:
            self._echo_until = self.position + samples(self.config.echo_tail_ms)
            self._extend_window()

    # ---- input --------------------------------------------------------
    def on_chunk(self, chunk: np.ndarray, probability: float, raw_level: float | None = None) -> list[Action]:
        """One 512-sample chunk and its speech probability (``raw_level``: its level before echo cancellation)."""
        cfg = self.config
        start, end = self.position, self.position + chunk.size
        self.position = end
        self.history.append(chunk)
        actions: list[Action] = []
        if self._ended is not None and start > self._ended.until and self._cand_start is None:
            self._ended = None
        if self.utterance is None:
            strict = self.echo_possible
            if strict:
                self._track_over_echo(start, probability, level_db(chunk), raw_level)
            else:
                self._over_echo.clear()
                self._track_onset(start, end, probability >= cfg.vad_threshold)
            if not strict:
                needed = samples(cfg.min_speech_ms)
            else:
                needed = samples(cfg.aec_min_speech_ms if self.echo_cancelled else cfg.echo_min_speech_ms)
            heard = self._cand_voiced >= needed or (
                strict and self.echo_cancelled and self._cand_near >= samples(cfg.aec_fast_speech_ms)
            )
            if self._cand_start is not None and heard and not self.gated:
                actions.append(self._begin(strict))
            elif self._awake_until is not None and end > self._awake_until and not self.playing:
                self._awake_until = None
                actions.append(Asleep(end))
        else:
            if self.echo_possible and self.echo.ready and not self.echo_cancelled:
                # The reply's echo is not the user's speech: judge it against the echo level.
                if level_db(chunk) < self.echo.echo_db:
                    probability = 0.0
            actions += self._continue(start, end, probability)
        self._trim()
        return actions

    def on_wake_score(self, word: str, score: float, position: int) -> list[Action]:
        """The wake word score of the 80 ms frame ending at ``position``."""
        if word != self.wake_word or score < self.config.wake_threshold or position < self._cooldown_until:
            return []
        self._cooldown_until = position + samples(self.config.wake_cooldown_s * 1000)
        was_gated = self.gated
        self._awake_until = position + samples(self.config.follow_up_s * 1000)
        if was_gated:
            # What follows the wake word is the command; the wake word itself is not.
            self._wake_floor = position
            self._cand_start, self._cand_voiced, self._cand_gap = None, 0, 0
        return [WakeDetected(position, word=word, score=score)]

    def finish(self) -> list[Action]:
        """End of input (a file ended): close the utterance in progress as if silence followed."""
        u = self.utterance
        if u is None:
            return []
        if u.silence_start is None:
            u.speculated = False
            return self._end(u, self.position, self.position, "silence")
        cut = u.silence_start + samples(self.config.speculate_after_ms)
        if cut > self.position:
            u.speculated, cut = False, self.position
        return self._end(u, u.silence_start, cut, "silence")

    # ---- internals ----------------------------------------------------
    def _track_over_echo(self, start: int, probability: float, level: float, raw_level: float | None) -> None:
        """While the reply is audible: count chunks that sound like the user over the echo.

        Speech has a loud/quiet rhythm, so the chunks need not be consecutive:
        what counts is how many of the recent ones (a window) pass the test.

        With the echo cancelled and the microphone's own level known, a chunk
        the canceller left nearly whole, once it is known to remove the echo
        well (ERLE), is the person talking over the reply (double talk): the
        echo's rest is 20-60 dB under what came in, a person's voice passes.
        Such chunks count sooner, and they are not learned as the echo's rest
        (a soft onset under Silero's threshold raised that level to the
        person's own and locked them out).
        """
        cfg = self.config
        near = False
        if self.echo_cancelled:  # the residual echo is learned as the echo was: what is left is far quieter
            user = self.echo.is_user(probability, level, cfg.aec_vad_threshold, cfg.aec_margin_db)
            if raw_level is not None:
                near = self.echo.converged(cfg.aec_erle_db) and raw_level - level <= cfg.aec_near_db
                if self.playing:  # every chunk: an echo path that changed must not stay "converged"
                    self.echo.observe_erle(raw_level, level)
        else:
            user = self.echo.is_user(probability, level)
        if self.playing and not user and not near:
            self.echo.observe(level)
        self._over_echo.append((start, user, user and near))
        loud = [position for position, is_user, _ in self._over_echo if is_user]
        if loud:
            self._cand_start = max(loud[0], self._wake_floor)
            self._cand_voiced = len(loud) * CHUNK
            self._cand_near = sum(CHUNK for _, _, is_near in self._over_echo if is_near)
        else:
            self._cand_start, self._cand_voiced, self._cand_near = None, 0, 0

    def _track_onset(self, start: int, end: int, speechy: bool) -> None:
        if speechy:
            if self._cand_start is None:
                self._cand_start, self._cand_voiced = max(start, self._wake_floor), 0
            self._cand_voiced += end - start
            self._cand_gap = 0
        elif self._cand_start is not None:
            self._cand_gap += end - start
            if self._cand_gap > samples(self.config.onset_gap_ms):
                self._cand_start, self._cand_voiced, self._cand_gap = None, 0, 0

    def _begin(self, over_playback: bool) -> SpeechStart:
        assert self._cand_start is not None
        self._count += 1
        onset = self._cand_start
        audio_start = max(onset - samples(self.config.pre_roll_ms), self._wake_floor, 0)
        voiced, continues = self._cand_voiced, 0
        ended, self._ended = self._ended, None
        if ended is not None and onset <= ended.until:
            audio_start, voiced, continues = ended.audio_start, voiced + ended.voiced, ended.number
        self.utterance = _Utterance(self._count, audio_start, onset, voiced=voiced, last_partial=self.position)
        self._cand_start, self._cand_voiced, self._cand_gap, self._cand_near = None, 0, 0, 0
        self._over_echo.clear()
        return SpeechStart(onset, utterance=self._count, over_playback=over_playback, continues=continues)

    def _continue(self, start: int, end: int, probability: float) -> list[Action]:
        cfg, u = self.config, self.utterance
        assert u is not None
        actions: list[Action] = []
        if probability >= cfg.vad_threshold:
            u.voiced += end - start
        if u.silence_start is None:
            if probability < cfg.vad_neg_threshold:
                u.silence_start = start
            elif cfg.partial_interval_ms and end - u.last_partial >= samples(cfg.partial_interval_ms):
                u.last_partial = end
                actions.append(Partial(end, utterance=u.number, audio=self.history.slice(u.audio_start, end)))
        elif probability >= cfg.vad_threshold:
            u.silence_start, u.complete = None, None  # speech resumed
            u.last_partial = max(u.last_partial, end - samples(cfg.partial_interval_ms) // 2)
            if u.speculated:
                u.speculated = False
                actions.append(Discard(end, utterance=u.number))
        else:
            silent = end - u.silence_start
            cut = u.silence_start + samples(cfg.speculate_after_ms)
            if u.complete is None and self.endpoint is not None and silent >= samples(cfg.endpoint_after_ms):
                u.complete = self.endpoint(self.history.slice(u.audio_start, end)) >= cfg.endpoint_threshold
            if not u.speculated and silent >= samples(cfg.speculate_after_ms):
                u.speculated = True
                actions.append(Speculate(end, utterance=u.number, audio=self.history.slice(u.audio_start, cut)))
            if silent >= samples(self._eot_ms(u)):
                return actions + self._end(u, u.silence_start, cut, "silence")
        if end - u.speech_start >= samples(cfg.max_utterance_s * 1000):
            speech_end = u.silence_start if u.silence_start is not None else end
            if u.speculated:
                actions.append(Discard(end, utterance=u.number))
                u.speculated = False
            actions += self._end(u, speech_end, end, "max_length")
        return actions

    def _eot_ms(self, u: _Utterance) -> int:
        cfg = self.config
        if self.endpoint is None:
            return cfg.eot_silence_ms
        return cfg.eot_complete_ms if u.complete else cfg.eot_incomplete_ms

    def _end(self, u: _Utterance, speech_end: int, cut: int, reason: Literal["silence", "max_length"]) -> list[Action]:
        self.utterance = None
        self._extend_window()
        if reason == "silence" and u.complete:
            # The model may have been wrong: speech soon after carries this utterance on.
            self._ended = _Ended(u.number, u.audio_start, u.voiced, speech_end + samples(self.config.eot_incomplete_ms))
        stop_at = self.position if reason == "max_length" else speech_end
        return [
            SpeechEnd(stop_at, utterance=u.number, reason=reason),
            Final(
                self.position,
                utterance=u.number,
                audio=self.history.slice(u.audio_start, cut),
                speech_end=speech_end,
                voiced_ms=ms(u.voiced),
                speculated=u.speculated,
            ),
        ]

    def _extend_window(self) -> None:
        if self._awake_until is not None:
            self._awake_until = max(self._awake_until, self.position + samples(self.config.follow_up_s * 1000))

    def _trim(self) -> None:
        if self.utterance is not None:
            self.history.keep_from(self.utterance.audio_start)
        else:
            keep_from = self.position if self._cand_start is None else self._cand_start
            keep_from -= samples(self.config.pre_roll_ms) + CHUNK
            if self._ended is not None:
                keep_from = min(keep_from, self._ended.audio_start)
            self.history.keep_from(keep_from)
