"""The intent layer: what tool, if any, an utterance asks for, before any model sees it.

Two stages. First the language's sentence templates (:mod:`.templates`),
tried on the utterance without its wake phrase and fillers, then on its last
sentences alone ("I'm making pasta. Set a timer for ten minutes."). Then,
for paraphrases no template covers, the nearest template by meaning
(:mod:`.nearest`), when one is loaded and close enough. Anything else is
chat, for the model.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path
from typing import Protocol

from .model import Intent
from .templates import Templates

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
LANGUAGES = tuple(sorted(p.stem for p in HERE.glob("*.yaml")))  # one template file per language
DEFAULT_LANGUAGE = "en"
MAX_CHARS = 400
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


class SecondStage(Protocol):
    """Finds a command the templates missed (the nearest template by meaning)."""

    def guess(self, text: str, language: str) -> Intent | None: ...


def language_of(language: str | None) -> str:
    """The template language for a session language ("fr-CA" -> "fr"; unknown -> English)."""
    code = (language or "").lower().split("-")[0].split("_")[0]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


@cache
def templates(language: str, extra: tuple[Path, ...] = ()) -> Templates:
    """The templates of ``language`` (plus the extra files of that language), loaded once per process."""
    return Templates(HERE / f"{language}.yaml", extra)


def files_by_language(files: tuple[Path, ...]) -> dict[str, tuple[Path, ...]]:
    """Extra template files (``VF_LLM_INTENT_FILES``) grouped by the ``language`` each declares."""
    import yaml

    grouped: dict[str, list[Path]] = {}
    for path in files:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        language = language_of(spec.get("language") if isinstance(spec, dict) else None)
        grouped.setdefault(language, []).append(path)
    return {lang: tuple(paths) for lang, paths in grouped.items()}


class IntentParser:
    """Maps an utterance to an :class:`Intent`, or None for chat."""

    def __init__(
        self,
        second_stage: SecondStage | None = None,
        languages: tuple[str, ...] = LANGUAGES,
        extra_files: tuple[Path, ...] = (),
    ) -> None:
        self.second_stage = second_stage
        self.extra = files_by_language(extra_files)
        for language in languages:
            self.templates(language)  # load now, not in the first turn

    def templates(self, language: str) -> Templates:
        return templates(language, self.extra.get(language, ()))

    def parse(self, text: str, language: str | None = None) -> Intent | None:
        lang = language_of(language)
        tpl = self.templates(lang)
        cleaned = tpl.filler.strip(text)
        if not cleaned or len(cleaned) > MAX_CHARS:
            return None
        for candidate in self._candidates(tpl, text, cleaned):
            intent = tpl.match(candidate)
            if intent is not None:
                return intent
        if self.second_stage is not None:
            return self.second_stage.guess(cleaned, lang)
        return None

    @staticmethod
    def _candidates(tpl: Templates, text: str, cleaned: str) -> list[str]:
        """The whole utterance, then its last sentences, then its first and last clauses: a remark may surround it."""
        candidates = [cleaned]
        wake_only = tpl.filler.wake_only(text)
        if wake_only and wake_only != cleaned:
            candidates.append(wake_only)  # "just so you know ..." loses "just" to the filler list
        sentences = _SENTENCE_END.split(cleaned)
        for i in range(1, len(sentences)):
            rest = tpl.filler.strip(" ".join(sentences[i:]))
            if rest:
                candidates.append(rest)
        # A remark after or before a comma: "stop all timers, I'm done cooking".
        clauses = cleaned.split(",")
        if len(clauses) > 1:
            candidates += [tpl.filler.strip(clauses[0]), tpl.filler.strip(clauses[-1])]
        return [c for c in candidates if c]


_templates_only = IntentParser(languages=())  # loads a language's templates on first use, not at import


def parse(text: str, language: str | None = None) -> Intent | None:
    """Templates only (no second stage): the explicit command in ``text``, or None."""
    return _templates_only.parse(text, language)
