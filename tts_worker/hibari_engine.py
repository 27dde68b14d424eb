"""hibari-tts's packaged voice behind :class:`~tts_worker.engine.SpeechEngine`.

hibari (Apache-2.0) is a 7.9 MB English model distilled from Kokoro-82M's
``af_heart`` voice, with its own phonemizer (misaki's lexicon, no espeak).
Only the voice inside the wheel is used: hibari fetches its other voices from
the network on first use, and this project downloads nothing at run time, so
asking for one of them fails with a message instead.

It yields float32 audio at 24 kHz, one array per sentence; the worker's
:class:`~tts_worker.stream.PieceCutter` resamples it to the asked rate as it
does Piper's 22.05 kHz.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from voicefleet.models import HIBARI_VOICE, hibari_voice

from .engine import SpeechEngine
from .voices import VoiceInfo

log = logging.getLogger(__name__)

#: The name clients choose it by (Piper's naming: language, speaker, model).
NAME = "en_US-hibari-heart"
#: What ``VF_TTS_DEFAULT_VOICE`` may call it: the catalog name, hibari's own voice name and Kokoro's.
ALIASES = frozenset(
    {NAME.lower(), "hibari", HIBARI_VOICE, f"hibari-{HIBARI_VOICE}", f"hibari:{HIBARI_VOICE}", "af_heart"}
)


class HibariUnavailable(ValueError):
    """A hibari voice other than the packaged one was asked for; the message is for a person."""


def names_it(choice: str) -> bool:
    """Whether a setting's voice name means the packaged hibari voice."""
    return choice.strip().lower() in ALIASES


def check_choice(choice: str) -> None:
    """Raise :class:`HibariUnavailable` when ``choice`` names a hibari voice that is not in the wheel."""
    from hibari.voices import VOICES  # type: ignore[import-untyped]

    lowered = choice.lower().removeprefix("hibari-").removeprefix("hibari:")
    kokoro = {v["kokoro"]: name for name, v in VOICES.items()}
    name = kokoro.get(lowered, lowered)
    if name in VOICES and name != HIBARI_VOICE:
        raise HibariUnavailable(
            f"hibari voice {choice!r} is not in the hibari-tts package (only {HIBARI_VOICE!r}, "
            f"offered as {NAME}); hibari downloads its other voices at run time, which this project never does"
        )


def info() -> VoiceInfo:
    """The packaged voice, described without loading it."""
    model = hibari_voice()  # first: says how to install hibari-tts when it is missing
    from hibari import SAMPLE_RATE

    return VoiceInfo(
        name=NAME, model_path=model, language="en_US", sample_rate=int(SAMPLE_RATE), quality="hibari", engine="hibari"
    )


class HibariEngine(SpeechEngine):
    """The packaged hibari voice; its ONNX sessions are shared by all threads (``run`` is thread-safe)."""

    def __init__(self, tts: object, name: str = NAME) -> None:
        self.tts = tts
        self.name = name
        self.sample_rate = int(tts.sample_rate)  # type: ignore[attr-defined]

    @classmethod
    def load(cls, threads: int = 1) -> HibariEngine:
        """Load the model and the phonemizer now (the worker says ready only after this).

        ``model`` is given as the packaged file, so hibari never looks for a
        voice in its download cache; its G2P (lexicons, tagger, the
        out-of-vocabulary net, one ONNX thread) is loaded here too, not on the
        first request.
        """
        from hibari import Hibari
        from hibari.voices import VOICES

        if not VOICES.get(HIBARI_VOICE, {}).get("bundled"):
            raise HibariUnavailable(f"this hibari-tts has no packaged {HIBARI_VOICE!r} voice")
        tts = Hibari(voice=HIBARI_VOICE, model=str(hibari_voice()), threads=threads)
        tts.g2p.oov  # noqa: B018 - the lazy properties load the lexicons and the OOV net
        return cls(tts)

    def synthesize(self, text: str, speech_rate: float = 1.0) -> Iterator[np.ndarray]:
        # hibari's speed is the same scale as ours (1.0 normal, 2.0 twice as fast); it accepts 0.5-2.0.
        speed = min(max(speech_rate, 0.5), 2.0)
        for part in self.tts.stream(text, speed=speed):  # type: ignore[attr-defined]
            if len(part):
                yield (np.clip(part, -1.0, 1.0) * 32767.0).astype(np.int16)
