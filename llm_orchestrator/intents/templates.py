"""Sentence templates of one language, matched with hassil, turned into tool calls.

Every match is checked before it counts: a ``{duration}`` must read as a
duration, a ``{place}`` must have a time zone, a free-text slot must say
something ("forget it" is not a memory to forget). Among the matches that
pass, the one that leaves the least text to wildcards wins: "remind me to
call mom in 10 minutes" is a timer with a label, not a note.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hassil import Intents, RecognizeResult, recognize_all

from .durations import seconds_in
from .filler import Filler
from .model import Intent
from .places import Places

_FREE_TEXT = {"text": "text", "fact": "text", "query": "query", "label": "label"}
_IGNORED = {"which"}
_ARTICLES = re.compile(r"^(?:(?:the|my|a|an|le|la|les|mon|ma|mes|un|une)\s+|l')", re.IGNORECASE)
_QUERY_LEAD = re.compile(r"^(?:(?:anything|something|stuff|things|the thing|the fact|the bit|the part|the stuff)\s+"
                         r"(?:about|on|mentioning|regarding|related to|that)\s+"
                         r"|(?:for|about|on|regarding|pour|sur|à propos de)\s+)", re.IGNORECASE)
_QUERY_PLACE = re.compile(
    r"\s+(?:on|in|from)\s+(?:my|the)\s+(?:computer|laptop|pc|drive|disk|files|documents|folders)$", re.IGNORECASE
)
_MAX_LABEL_WORDS = 8
_NOT_A_MEMORY = frozenset("how what why when where who whether to comment pourquoi quand".split())


class Rejected(Exception):
    """A template matched but its slots don't make a call (try the next match)."""


class Templates:
    """One language's templates (a YAML file beside this module) and how to read their slots."""

    def __init__(self, path: Path, extra: tuple[Path, ...] = ()) -> None:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        for more in extra:
            merge(spec, yaml.safe_load(more.read_text(encoding="utf-8")), more)
        self.language: str = spec["language"]
        self.spec = spec
        self.intents = Intents.from_dict(spec)
        self.filler = Filler(spec.get("filler", {}))
        self.places = Places(spec.get("places", {}))
        self.asks: dict[str, str] = spec.get("asks", {})
        # hassil turns number words into numbers with unicode-rbnf, which builds its rules on first
        # use (~100 ms): pay that at load time, not in the first turn.
        self.match("1")

    def match(self, text: str) -> Intent | None:
        """The best checked match of the whole of ``text``, or None."""
        candidates: list[tuple[tuple[int, int], Intent]] = []
        for result in recognize_all(text, self.intents, language=self.language):
            try:
                intent = self._intent(result, text)
            except Rejected:
                continue
            wildcards = [e for e in result.entities_list if e.is_wildcard]
            candidates.append(((sum(len(e.text) for e in wildcards), len(wildcards)), intent))
        if not candidates:
            return None
        candidates.sort(key=lambda c: c[0])
        return candidates[0][1]

    # ------------------------------------------------------------------
    def _intent(self, result: RecognizeResult, text: str) -> Intent:
        tool = result.intent.name
        meta = result.intent_metadata or {}
        args: dict[str, Any] = dict(result.intent_data.slots or {})
        for name, entity in result.entities.items():
            if name in _FREE_TEXT:
                value = self._free_text(name, _original(entity, text), tool, meta)
                args[_FREE_TEXT[name]] = value
            elif name == "duration":
                seconds = seconds_in(entity.text, self.language)
                if seconds is None:
                    raise Rejected
                args["seconds"] = seconds
            elif name == "note_id":
                number = float(entity.value)
                if number != int(number) or number < 1:
                    raise Rejected
                args["id"] = str(int(number))
            elif name == "place":
                zone = self.places.zone(entity.text)
                if zone is None:
                    return Intent(tool, ask=self._ask("unknown_place", place=entity.text.strip()))
                args["timezone"] = zone
            elif name in _IGNORED:
                continue
            elif name not in args:
                args[name] = entity.value
        if meta.get("ask") == "duration" and "seconds" not in args:
            return Intent(tool, ask=self._ask("duration"))
        return Intent(tool, args)

    def _free_text(self, slot: str, value: str, tool: str, meta: dict[str, Any]) -> str:
        value = value.strip(" \t,.;:!?\"'-")
        if slot in ("query", "label"):
            value = value.split(",")[0]  # "the plumber, he's been": a remark follows the comma
        if slot == "query":
            value = _QUERY_PLACE.sub("", _QUERY_LEAD.sub("", value))
        if slot == "label" and meta.get("kind") != "reminder":
            value = _ARTICLES.sub("", value)
            if len(value.split()) > _MAX_LABEL_WORDS or "timer" in value.lower() or "minuteur" in value.lower():
                raise Rejected
        if slot == "label" and re.search(r"[.!?;]\s", value):
            raise Rejected  # a label never spans two sentences ("I'm making pasta. Set a| timer")
        if slot == "label" and seconds_in(value, self.language, whole=False) is not None:
            raise Rejected  # "a 5 minute timer" read as a timer named "5 minute"
        if not value or value.lower() in self.filler.empty_args:
            raise Rejected
        if tool == "memory.forget" and value.split()[0].lower() in _NOT_A_MEMORY:
            raise Rejected  # "is it possible to forget how to ride a bike"
        if slot == "fact" and value.split()[0].lower() not in self.filler.fact_starts:
            raise Rejected  # a bare "remember ..." must be about the user, not "remember the 90s"
        return value

    def _ask(self, key: str, **values: str) -> str:
        template = self.asks.get(key) or _DEFAULT_ASKS[key]
        return template.format(**values)


_DEFAULT_ASKS = {
    "duration": "For how long? For example: set a timer for five minutes.",
    "unknown_place": "Sorry, I don't know which time zone {place} is in.",
}


#: Sections of a template file that an extra file (``VF_LLM_INTENT_FILES``) may add to.
MERGED = ("intents", "lists", "expansion_rules", "skip_words")


def merge(spec: dict[str, Any], extra: dict[str, Any], where: Path) -> None:
    """Add an extra template file (the same hassil format) to a language's templates.

    Intents are named after the tool they call, as in the shipped files; an
    extra file adds intents (e.g. for tools of MCP servers: ``mcp.time.get_current_time``)
    or more sentences to existing ones, and may add lists and rules.
    """
    if not isinstance(extra, dict) or extra.get("language") != spec["language"]:
        raise ValueError(f"{where}: an intent file needs 'language: {spec['language']}' and hassil sections")
    for section in MERGED:
        added = extra.get(section)
        if not added:
            continue
        if section == "skip_words":
            spec[section] = [*spec.get(section, []), *added]
            continue
        target = spec.setdefault(section, {})
        for name, value in added.items():
            if section == "intents" and name in target:
                target[name] = {"data": [*target[name].get("data", []), *value.get("data", [])]}
            else:
                target[name] = value


def _original(entity: Any, text: str) -> str:
    """The slot's words as they stand in ``text``, punctuation and case kept ("Call Paul at 2:30, urgent")."""
    words = re.findall(r"\w+", entity.text)
    if not words:
        return str(entity.text)
    pattern = r"\W+".join(re.escape(w) for w in words)
    found = list(re.finditer(pattern, text, re.IGNORECASE))
    if not found:
        return str(entity.text)
    span = found[-1]
    return text[span.start() : span.end()] + _closing(text[span.end() :])


def _closing(after: str) -> str:
    # Keep a closing quote or bracket that belongs to the slot, drop sentence punctuation.
    m = re.match(r"[\"')\]]+", after)
    return m.group(0) if m else ""
