"""The speech engine interface: one loaded voice, text in, PCM out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np


class SpeechEngine(ABC):
    """A loaded voice. Blocking: call it from a worker thread, never the event loop."""

    #: The voice's name, as clients choose it.
    name: str
    #: Rate of the audio :meth:`synthesize` yields, in Hz.
    sample_rate: int

    @abstractmethod
    def synthesize(self, text: str, speech_rate: float = 1.0) -> Iterator[np.ndarray]:
        """Yield int16 mono audio as soon as each part (a sentence) is ready.

        ``speech_rate`` 1.0 is the voice's normal pace; 1.5 is half as fast again.
        """

    def warm(self) -> None:
        """Run once so the first real request does not pay for lazy initialization."""
        for _ in self.synthesize("Ready."):
            pass
