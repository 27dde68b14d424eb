"""The second stage: a paraphrase no template covers, mapped to the nearest template by meaning.

Sentences sampled from every language's templates (slots filled with example
values) and the chat examples of each template file are embedded once with
MiniLM. An utterance the templates missed goes to the tool of its nearest
sample when that sample is a command, its cosine is at least ``threshold``
(measured with ``bench/intents.py``), and the tool's arguments can be read
from the utterance (a duration for a timer, the words after "about" for a
search...). Otherwise it is chat. Costs one embedding, about 5 ms.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hassil import TextSlotList
from hassil.sample import sample_sentence

from voicefleet.embeddings import MiniLM

from .durations import find_duration
from .model import Intent
from .parser import templates
from .templates import Templates

log = logging.getLogger(__name__)

#: Cosine similarity to the nearest command sample above which a paraphrase counts as that command.
#: Measured with bench/intents.py (see the README's intent table).
DEFAULT_THRESHOLD = 0.75
SAMPLES_PER_SENTENCE = 6
CHAT = "none"

_EXAMPLES = {
    "text": ["buy milk", "the meeting is at noon"],
    "fact": ["I like tea"],
    "query": ["the budget", "holiday photos"],
    "label": ["pasta"],
    "which": ["pasta"],
    "duration": ["five minutes", "an hour"],
    "place": ["Tokyo"],
    "note_id": ["three"],
}
_AFTER_FREE_TEXT = re.compile(r"(?::|\b(?:that|saying|to say|down|note|remember|noter|que|de)\b)\s*(?P<rest>.+)$",
                              re.IGNORECASE)
_AFTER_QUERY = re.compile(r"\b(?:about|for|on|mentioning|regarding|called|named|titled|sur|pour|nommée?|appelée?)\s+"
                          r"(?P<rest>.+)$", re.IGNORECASE)
_PLACE = re.compile(r"\b(?:in|à|au|aux|en)\s+(?P<place>[\w' -]+?)\s*$", re.IGNORECASE)
_NO_ARGS = frozenset({"notes.list", "memory.list", "timer.list"})
_LATEST = re.compile(r"\b(?:last|latest|newest|recent|dernière|récente)\b", re.IGNORECASE)
_ALL = re.compile(r"\b(?:all|every|each|timers|tous|toutes|minuteurs)\b", re.IGNORECASE)


@dataclass
class _Index:
    labels: list[str]
    vectors: np.ndarray


class Nearest:
    """Finds the nearest template sample of an utterance; see the module's docstring."""

    def __init__(
        self,
        encoder: MiniLM,
        languages: tuple[str, ...],
        threshold: float = DEFAULT_THRESHOLD,
        cache_dir: Path | None = None,
    ) -> None:
        self.encoder = encoder
        self.threshold = threshold
        self.cache_dir = cache_dir
        self.indexes = {lang: self._index(templates(lang)) for lang in languages}

    def _index(self, tpl: Templates) -> _Index:
        labels, texts = [], []
        rng = random.Random(0)
        slot_lists = {name: TextSlotList.from_strings(values) for name, values in _EXAMPLES.items()}
        for name, intent in tpl.intents.intents.items():
            for data in intent.data:
                rules = {**tpl.intents.expansion_rules, **data.expansion_rules}
                for sentence in data.sentences:
                    pool = list(itertools.islice(sample_sentence(sentence, slot_lists, rules, tpl.language), 200))
                    for text in rng.sample(pool, min(SAMPLES_PER_SENTENCE, len(pool))):
                        labels.append(name)
                        texts.append(text)
        for text in tpl.spec.get("chat_examples", []):
            labels.append(CHAT)
            texts.append(text)
        return _Index(labels, self._embed_cached(tpl.language, labels, texts))

    def _embed_cached(self, language: str, labels: list[str], texts: list[str]) -> np.ndarray:
        """Embeddings of the samples, kept on disk per template content: a restart costs milliseconds, not seconds."""
        digest = hashlib.sha256("\n".join([*labels, *texts]).encode()).hexdigest()[:16]
        path = self.cache_dir / f"intent-samples-{language}-{digest}.npy" if self.cache_dir else None
        if path is not None and path.exists():
            try:
                vectors = np.load(path)
                if vectors.shape[0] == len(texts):
                    log.info("nearest-template index (%s): %d samples from %s", language, len(texts), path.name)
                    return vectors
            except (OSError, ValueError):
                log.warning("ignoring a broken sample cache %s", path)
        vectors = self.encoder.embed(texts)
        log.info("nearest-template index (%s): %d samples embedded", language, len(texts))
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, vectors)
                tmp.replace(path)  # atomic: processes starting together never read half a file
            except OSError as exc:
                log.warning("could not keep the sample embeddings in %s: %s", path.parent, exc)
        return vectors

    def guess(self, text: str, language: str) -> Intent | None:
        index = self.indexes.get(language)
        if index is None:
            return None
        scores = index.vectors @ self.encoder.embed([text])[0]
        best = int(np.argmax(scores))
        tool, score = index.labels[best], float(scores[best])
        if tool == CHAT or score < self.threshold:
            return None
        args = _arguments(tool, text, language, templates(language))
        if args is None:
            return None
        return Intent(tool, args, stage="nearest", score=score)


def _arguments(tool: str, text: str, language: str, tpl: Templates) -> dict[str, object] | None:
    """The tool's arguments read loosely from a paraphrase, or None when they can't be."""
    if tool in _NO_ARGS:
        return {}
    if tool == "time.now":
        m = _PLACE.search(text)
        zone = tpl.places.zone(m.group("place")) if m else None
        return {"timezone": zone} if zone else ({} if m is None else None)
    if tool == "timer.cancel":
        return {"all": True} if _ALL.search(text) else {}
    if tool == "timer.set":
        found = find_duration(text, language)
        if found is None:
            return None
        seconds, after = found
        label = re.sub(r"^\W*(?:to|for|that|about|pour|de)\s+", "", after.strip(), flags=re.IGNORECASE).strip(" .!?,")
        return {"seconds": seconds, "label": label} if label else {"seconds": seconds}
    if tool in ("notes.add", "memory.remember"):
        m = _AFTER_FREE_TEXT.search(text)
        value = m.group("rest").strip(" .!?,;:") if m else ""
        return {"text": value} if value and value.lower() not in tpl.filler.empty_args else None
    m = _AFTER_QUERY.search(text)
    value = m.group("rest").strip(" .!?,;:") if m else ""
    if not value and tool == "notes.read" and _LATEST.search(text):
        return {}
    if not value or value.lower() in tpl.filler.empty_args:
        return None
    return {"query": value}


def load_nearest(threads: int = 1, threshold: float = DEFAULT_THRESHOLD) -> Nearest:
    """The second stage with the packaged MiniLM model, over every language's templates."""
    from voicefleet.embeddings import load_minilm
    from voicefleet.models import models_dir

    from .parser import LANGUAGES

    return Nearest(load_minilm(threads), LANGUAGES, threshold, cache_dir=models_dir())
