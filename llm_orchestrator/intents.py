"""Explicit commands found in a transcript without asking the model.

"Set a timer for five minutes for the pasta" must work with any model, even
a tiny one that cannot call functions, and it must be fast: a handful of
regular expressions map such commands to a tool of the tools worker and its
arguments. Anything that is not clearly a command returns None and goes to
the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .numbers import normalize_amounts, parse_duration, words_to_digits


@dataclass(frozen=True)
class Intent:
    """A command for one tool; ``ask`` is set when something is missing (say it instead)."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    ask: str | None = None


_FLAGS = re.IGNORECASE
# Wake phrases and politeness around the command itself.
_LEAD = re.compile(
    r"^(?:(?:hey|ok|okay|hi)\s+\w+[\s,.!]+)?"
    r"(?:(?:please|so|and|now|ok|okay|alright|well|hey)[\s,]+)*"
    r"(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?|i\s+(?:want|need|would like|'d like)\s+you\s+to\s+)?"
    r"(?:please\s+)?",
    _FLAGS,
)
_TRAIL = re.compile(r"(?:[\s,]+please)?[\s.!?,]*$", _FLAGS)


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip()
    text = _LEAD.sub("", text, count=1)
    return _TRAIL.sub("", text, count=1)


def _arg(value: str) -> str:
    return value.strip(" ,.:;!?\"'")


def _simple(tool: str, patterns: list[str], key: str | None = None) -> Callable[[str], Intent | None]:
    compiled = [re.compile(p, _FLAGS) for p in patterns]

    def match(text: str) -> Intent | None:
        for pattern in compiled:
            m = pattern.match(text)
            if m:
                if key is None:
                    return Intent(tool)
                value = _arg(m.group(key))
                if value:
                    return Intent(tool, {key: value})
        return None

    return match


_notes_add = _simple(
    "notes.add",
    [
        r"^(?:take|make|add|create|leave)\s+(?:a\s+|an?\s+new\s+)?note"
        r"(?:\s+(?:that|saying|to say|of|about))?[\s:,]+(?:to\s+)?(?P<text>.+)$",
        r"^note\s*(?:that|down|:)\s*(?P<text>.+)$",
        r"^(?:write|jot|put)\s+(?:that\s+)?down\s+(?:that\s+)?(?P<text>.+)$",
        r"^add\s+(?P<text>.+?)\s+to\s+my\s+notes$",
    ],
    "text",
)
_notes_list = _simple(
    "notes.list",
    [
        r"^(?:read|show|list|tell|give)\s+(?:me\s+)?(?:all\s+)?(?:of\s+)?(?:my|the)\s+notes$",
        r"^what(?:'s|\s+is|\s+are)?\s+(?:in\s+)?my\s+notes$",
        r"^what\s+notes\s+do\s+i\s+have$",
        r"^do\s+i\s+have\s+any\s+notes$",
    ],
)
_notes_search = _simple(
    "notes.search",
    [
        r"^(?:search|check|look\s+through)\s+(?:in\s+)?my\s+notes\s+(?:for|about)\s+(?P<query>.+)$",
        r"^(?:find|get)\s+(?:me\s+)?(?:my|the)\s+notes?\s+(?:about|on|for|with)\s+(?P<query>.+)$",
        r"^read\s+(?:me\s+)?(?:my|the)\s+notes\s+(?:about|on|for|with)\s+(?P<query>.+)$",
        r"^what\s+did\s+i\s+note\s+about\s+(?P<query>.+)$",
    ],
    "query",
)
_NOTE_BY_NUMBER = r"(?:my\s+|the\s+)?note\s+(?:number\s+)?(?P<id>\d+|[a-z]+(?:[\s-][a-z]+)?)"
_NOTE_BY_WORDS = r"(?:my\s+|the\s+)?note\s+(?:about|on|with|that\s+says|saying)\s+(?P<query>.+)"
_READ = r"^(?:read|show|tell)\s+(?:me\s+)?"
_DELETE = r"^(?:delete|remove|erase|throw\s+away)\s+"


def _by_number_or_words(tool: str, verb: str, latest: bool) -> Callable[[str], Intent | None]:
    by_number = re.compile(verb + _NOTE_BY_NUMBER + "$", _FLAGS)
    by_words = re.compile(verb + _NOTE_BY_WORDS + "$", _FLAGS)
    last = re.compile(verb + r"(?:my\s+|the\s+)?(?:last|latest|newest|most\s+recent)\s+note$", _FLAGS)

    def match(text: str) -> Intent | None:
        if latest and last.match(text):
            return Intent(tool)
        m = by_words.match(text)
        if m:
            return Intent(tool, {"query": _arg(m.group("query"))})
        m = by_number.match(text)
        if m:
            number = words_to_digits(m.group("id"))
            if number.isdigit():
                return Intent(tool, {"id": number})
        return None

    return match


_notes_read = _by_number_or_words("notes.read", _READ, latest=True)
_notes_delete = _by_number_or_words("notes.delete", _DELETE, latest=False)
_memory_list = _simple(
    "memory.list",
    [
        r"^what\s+do\s+you\s+(?:remember|know)(?:\s+about\s+me)?$",
        r"^what\s+have\s+you\s+(?:remembered|memorized)(?:\s+about\s+me)?$",
        r"^(?:tell\s+me\s+)?what\s+you\s+remember(?:\s+about\s+me)?$",
    ],
)
_memory_remember = _simple(
    "memory.remember",
    [r"^(?:remember|memorize)\s+(?:that\s+)?(?P<text>.+)$"],
    "text",
)
_memory_forget = _simple(
    "memory.forget",
    [r"^forget\s+(?:that\s+|about\s+|what\s+i\s+said\s+about\s+)?(?P<query>.+)$"],
    "query",
)
_files_search = _simple(
    "files.search",
    [
        r"^(?:find|search\s+for|look\s+for|locate|get)\s+(?:me\s+)?(?:the|my|a|any)?\s*(?:files?|documents?|docs?|pdfs?)\s+(?:about|on|for|called|named|regarding|mentioning|that\s+mentions?)\s+(?P<query>.+)$",
        r"^search\s+(?:in\s+)?(?:my|the)\s+(?:files|documents|docs)\s+(?:for|about)\s+(?P<query>.+)$",
        r"^which\s+(?:file|document)\s+(?:talks|is)\s+about\s+(?P<query>.+)$",
    ],
    "query",
)
_web_search = _simple(
    "web.search",
    [
        r"^(?:search|look)\s+(?:on\s+)?(?:the\s+)?(?:web|internet|online)\s+(?:for|about)\s+(?P<query>.+)$",
        r"^(?:do\s+a\s+)?web\s+search\s+(?:for\s+)?(?P<query>.+)$",
        r"^(?:search|look\s+up|find)\s+(?P<query>.+?)\s+(?:online|on\s+the\s+(?:web|internet))$",
        r"^google\s+(?P<query>.+)$",
    ],
    "query",
)
_time_now = _simple(
    "time.now",
    [
        r"^what(?:'s|\s+is)\s+the\s+(?:time|date)(?:\s+(?:now|today|right\s+now))?$",
        r"^what\s+time\s+is\s+it(?:\s+(?:now|right\s+now))?$",
        r"^(?:tell\s+me|do\s+you\s+know)\s+(?:what\s+)?the\s+(?:time|date)(?:\s+is)?$",
        r"^what(?:'s|\s+is)\s+today'?s\s+date$",
        r"^what\s+day\s+is\s+(?:it|today)(?:\s+today)?$",
    ],
)
_timer_list = _simple(
    "timer.list",
    [
        r"^(?:what|which|any)\s+timers?\s*(?:do\s+i\s+have|are\s+(?:running|set|on)|is\s+(?:running|set|on))?$",
        r"^(?:list|show|check)\s+(?:me\s+)?(?:my|the|all)?\s*(?:\w+\s+)?timers?$",
        r"^how\s+(?:much\s+time|long)\s+(?:is\s+)?left(?:\s+on\s+(?:the|my)\s+(?:\w+\s+)?timer)?$",
        r"^(?:do\s+i\s+have\s+any\s+timers)(?:\s+(?:running|set))?$",
    ],
)
_TIMER_CANCEL = re.compile(
    r"^(?:cancel|stop|delete|remove|clear|turn\s+off|kill)\s+(?P<all>all\s+)?(?:of\s+)?(?:the\s+|my\s+|that\s+)?"
    r"(?:(?P<label>[\w' -]+?)\s+)?timers?(?:\s+(?:for|called|named)\s+(?:the\s+)?(?P<label2>.+))?$",
    _FLAGS,
)
_TIMER_SET = re.compile(r"^(?:set|start|create|make|put\s+on|add)\b.*\btimer\b|^timer\s+for\b", _FLAGS)
_REMIND_IN = re.compile(r"^remind\s+me\s+in\s+(?P<rest>.+)$", _FLAGS)
_LABEL_BEFORE_TIMER = re.compile(r"(?:\ba|\ban|\bthe|\bmy|\bme)?\s*(?P<label>[a-z][\w'-]*)\s+timer\b", _FLAGS)
_LABEL_AFTER = re.compile(r"\b(?:for|called|named|labell?ed)\s+(?:the\s+|my\s+|a\s+)?(?P<label>[a-z][\w' -]*)$", _FLAGS)
_NOT_LABELS = frozenset(
    "a an the my me set start create make new timer hour hours minute minutes second seconds min mins sec secs "
    "and for one another".split()
)


def _timer_cancel(text: str) -> Intent | None:
    m = _TIMER_CANCEL.match(text)
    if not m:
        return None
    if m.group("all"):
        return Intent("timer.cancel", {"all": True})
    label = _arg(m.group("label2") or m.group("label") or "")
    if label.lower() in _NOT_LABELS:
        label = ""
    return Intent("timer.cancel", {"label": label} if label else {})


def _timer_set(text: str) -> Intent | None:
    reminder = _REMIND_IN.match(text)
    if not (_TIMER_SET.match(text) or reminder):
        return None
    normalized = normalize_amounts(text)
    found = parse_duration(normalized)
    if found is None:
        return Intent("timer.set", ask="For how long? For example: set a timer for five minutes.")
    seconds, (start, end) = found
    args: dict[str, Any] = {"seconds": seconds}
    label = ""
    if reminder:
        after = normalized[end:].strip()
        label = _arg(re.sub(r"^(?:to|that|about)\s+", "", after, flags=_FLAGS))
    else:
        before = re.sub(r"\s+(?:for|of|in)\s*$", "", normalized[:start], flags=_FLAGS)
        rest = (before + " " + normalized[end:]).strip()
        named_after = _LABEL_AFTER.search(rest)
        named_before = _LABEL_BEFORE_TIMER.search(rest)
        if named_after:
            label = named_after.group("label")
        elif named_before:
            label = named_before.group("label")
        label = _arg(label)
        if label.lower() in _NOT_LABELS or label.lower().startswith("timer"):
            label = ""
    if label:
        args["label"] = label
    return Intent("timer.set", args)


# Order matters: the most specific patterns first ("what do you remember"
# before "remember that...", "cancel the timer" before "set a timer").
_MATCHERS: list[Callable[[str], Intent | None]] = [
    _timer_cancel,
    _timer_list,
    _timer_set,
    _time_now,
    _notes_list,
    _notes_read,
    _notes_delete,
    _notes_search,
    _notes_add,
    _memory_list,
    _memory_forget,
    _memory_remember,
    _files_search,
    _web_search,
]


def parse(text: str) -> Intent | None:
    """The explicit command in ``text``, or None when it is not one."""
    cleaned = _clean(text)
    if not cleaned or len(cleaned) > 400:
        return None
    for match in _MATCHERS:
        intent = match(cleaned)
        if intent is not None:
            return intent
    return None
