"""Keep Whisper from putting words in the user's mouth.

Whisper was trained on subtitles: on silence, breath or noise it may write
"Thank you.", "you" or "Thanks for watching!". Three defences, cheapest first:

1. an utterance with too little voiced audio (Silero's count) is never sent;
2. a segment is dropped when Whisper itself says it is not speech (high
   ``no_speech_prob`` with a low ``avg_logprob``), is very unsure
   (``avg_logprob`` below a floor) or loops (high compression ratio);
3. a transcript that is exactly a classic hallucination is dropped unless it
   was spoken clearly (long enough, confident) -- "thank you" is also a real
   thing people say to an assistant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .stt import Segment, Transcript


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed, single spaces (for blocklists and word error rate)."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


@dataclass
class HallucinationFilter:
    """Decides what of a transcript the user really said."""

    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    min_logprob: float = -1.6
    max_compression_ratio: float = 2.4
    min_voiced_ms: int = 220
    blocklist: frozenset[str] = frozenset()
    #: A blocklisted phrase survives only when spoken at least this long...
    blocklist_min_voiced_ms: int = 450
    #: ...with every segment at least this confident.
    blocklist_min_logprob: float = -0.5

    @classmethod
    def create(cls, blocklist: Iterable[str], **kwargs: float) -> HallucinationFilter:
        return cls(blocklist=frozenset(normalize_text(p) for p in blocklist), **kwargs)  # type: ignore[arg-type]

    def worth_transcribing(self, voiced_ms: float) -> bool:
        return voiced_ms >= self.min_voiced_ms

    def keeps(self, segment: Segment) -> bool:
        if segment.no_speech_prob > self.no_speech_threshold and segment.avg_logprob < self.logprob_threshold:
            return False
        if segment.avg_logprob < self.min_logprob:
            return False
        return segment.compression_ratio <= self.max_compression_ratio

    def clean(self, transcript: Transcript, voiced_ms: float) -> str:
        """The text to show and answer, or "" when nothing was really said."""
        if not self.worth_transcribing(voiced_ms):
            return ""
        kept = [s for s in transcript.segments if self.keeps(s)]
        text = " ".join(s.text.strip() for s in kept if s.text.strip())
        normalized = normalize_text(text)
        if not normalized:
            return ""
        if normalized in self.blocklist:
            clear = voiced_ms >= self.blocklist_min_voiced_ms and all(
                s.avg_logprob >= self.blocklist_min_logprob and s.no_speech_prob < 0.5 for s in kept
            )
            if not clear:
                return ""
        return text
