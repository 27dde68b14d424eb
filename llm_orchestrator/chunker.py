"""Cut a streamed reply into chunks a speech synthesizer can say one by one.

The first chunk is what the user waits for, so it is cut early: at the first
clause boundary (comma, semicolon, colon, dash) once a few words arrived.
A first clause without any ("Mondays are a day of the week that brings
together...") is cut where a speaker could breathe: just before a
conjunction or a relative word ("and", "that", "because"...) once four words
came, before "is"/"are"/"was"/"were" after a subject of five words or more
("The best way to sleep | is to try..."), or before a preposition ("in",
"with"...) once ``first_max_words`` did. Such a cut waits for the word after the conjunction, so that the rest
is never a dangling "and dogs." alone, and it is skipped where the words
bind ("between 7 and 9", "Tom and Jerry", "more than", "look for").
After that the reply goes out in whole sentences, which sound better.

A full stop is not always the end of a sentence. It is not one after a title
or a Latin abbreviation ("Dr.", "e.g."), inside an initialism ("U.S."), in a
number ("3.14"), or after the number of a list item ("1. First"). Times
("10:30") and thousands ("1,000") are not clause boundaries either. Because
tokens arrive a few characters at a time, a boundary is only decided once the
character after it is known.

Code fences are never spoken: a short phrase stands in for the first one.
Everything else goes through :func:`speakable.speakable`.
"""

from __future__ import annotations

import re

from .speakable import has_words, speakable

FENCE = "```"

# Never a sentence end: a name or a number follows them.
_TITLES = frozenset(
    "mr mrs ms dr prof sr jr st mt no nos vs fig figs approx ca cf e.g i.e esp dept gen col capt lt sgt".split()
)
# A sentence end only when a capital letter follows.
_MAYBE_END = frozenset("etc inc ltd co corp a.m p.m am pm".split())
_INITIALISM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")
_NUMBER = re.compile(r"^\d+$")
_CLOSERS = "\"')]}\u201d\u2019*_"  # quotes (straight and curly), brackets, emphasis
_CLAUSE = ",;:\u2014\u2013"  # comma, semicolon, colon, em and en dash
_WORD = re.compile(r"[^\W_]+")
_SEGMENT_START = re.compile(r"(?:^|\n)[ \t>*+-]*$")

#: Words before a conjunction or relative word at which the first chunk may be cut there.
PHRASE_MIN_WORDS = 4
#: A phrase boundary falls just before these (when they are bare words).
_CONJUNCTIONS = frozenset(
    "and but or nor because that which who whom whose when whenever while where wherever although though "
    "if unless since until than whereas whether".split()
)
_PREPOSITIONS = frozenset(
    "in on at with for from into during after before about through without within by between among across "
    "around against toward towards throughout".split()
)
#: A word that binds to what came before it: never cut before it after these.
_BINDS = {
    "and": frozenset("between both either neither whether".split()),  # anywhere in the last words
    "that": frozenset(
        "about of in on at with for from to by into like do does did all so not just than love loves try".split()
    ),
    "than": frozenset("more less fewer other".split()),
    "if": frozenset("even as only".split()),
    "though": frozenset("even as".split()),
    # prepositions: verbs and adjectives that take them ("look for", "famous for", "good at")
    "_prep": frozenset(
        "look looking looks wait waiting ask asking care think thinking talk talking deal dealing come comes "
        "coming go goes going turn put get gets getting pay paying work works depend depends depending listen "
        "search thank thanks known famous used made good bad full rich responsible interested based focus "
        "focused rely relies agree believe belong belongs consist consists refer refers result results apply "
        "one some many most all each none part both".split()
    ),
}
#: After a long subject (five words or more), a pause before its verb is natural:
#: "The best way to sleep | is to try..."
_COPULAS = frozenset("is are was were".split())
_NOT_A_SUBJECT_END = frozenset(
    "there here it that this these those what which who whom whose where when why how he she they we i you "
    "not also still".split()
)
_QUESTION_STARTS = frozenset("what which who whom whose where when why how is are was were do does did can".split())
#: Never left at the end of a chunk before a preposition: "the best way is | by making it a habit".
_AUXILIARIES = frozenset(
    "is are was were be been being am can will would should could may might must do does did has have had".split()
)
#: A word after these is in a noun phrase: "a beautiful and mysterious body", "the capital and largest city".
_DETERMINERS = frozenset("a an the this these those my your his her its our their some any such very".split())
_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred thousand "
    "million more less sooner later".split()
)
_BARE = re.compile(r"^[^\W_]+(?:['\u2019-][^\W_]+)*$")
_TOKEN = re.compile(r"\S+")


class SpeechChunker:
    """Feed it reply text as it streams; it returns the chunks ready to speak."""

    def __init__(
        self,
        first_min_words: int = 3,
        max_chars: int = 240,
        code_phrase: str = "I've put the code on your screen.",
        early_first: bool = True,
        first_max_words: int = 8,
    ) -> None:
        self.first_min_words = first_min_words
        self.first_max_words = first_max_words  # 0: the first chunk ends at a clause boundary only
        self.early_first = early_first  # False: whole sentences only (text known in advance)
        self.max_chars = max_chars
        self.code_phrase = code_phrase
        self.chunks_out = 0
        self._pending = ""  # reply text outside code, not yet cut off
        self._raw = ""  # text not yet sorted into code / not code
        self._in_code = False
        self._code_said = False

    def feed(self, text: str) -> list[str]:
        """Add streamed text; return the chunks that became ready."""
        self._raw += text
        out: list[str] = []
        while self._raw:
            fence = self._raw.find(FENCE)
            if self._in_code:
                if fence < 0:
                    # Keep a possible partial closing fence for the next token.
                    self._raw = self._raw[-2:] if self._raw.endswith("`") else ""
                    break
                self._raw = self._raw[fence + len(FENCE) :]
                self._in_code = False
                if not self._code_said:
                    self._code_said = True
                    out += self._emit(self.code_phrase)
                continue
            if fence < 0:
                keep = len(self._raw) - len(self._raw.rstrip("`"))  # maybe a fence starting
                self._pending += self._raw[: len(self._raw) - keep]
                self._raw = self._raw[len(self._raw) - keep :]
                out += self._cut_ready(final=False)
                break
            self._pending += self._raw[:fence]
            self._raw = self._raw[fence + len(FENCE) :]
            self._in_code = True
            out += self._cut_ready(final=False)
            out += self._emit(self._pending)  # what led up to the code is complete
            self._pending = ""
        return out

    def flush(self) -> list[str]:
        """The reply ended: return whatever is left."""
        out: list[str] = []
        if self._in_code:
            if not self._code_said:
                self._code_said = True
                out += self._emit(self.code_phrase)
        else:
            self._pending += self._raw
        self._raw, self._in_code = "", False
        out += self._cut_ready(final=True)
        out += self._emit(self._pending)
        self._pending = ""
        return out

    @property
    def pending_chars(self) -> int:
        """Characters fed but not yet in a chunk (the tail of the last pieces)."""
        return len(self._pending) + len(self._raw)

    # ------------------------------------------------------------------
    def _emit(self, raw: str) -> list[str]:
        text = speakable(raw)
        if not has_words(text):
            return []
        self.chunks_out += 1
        return [text]

    def _cut_ready(self, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            cut = self._find_cut(self._pending, final)
            if cut is None:
                return out
            chunk, self._pending = self._pending[:cut], self._pending[cut:].lstrip()
            out += self._emit(chunk)

    def _find_cut(self, text: str, final: bool) -> int | None:
        """Index just past the first boundary in ``text``; None if there is none yet."""
        first = self.early_first and self.chunks_out == 0
        # A phrase boundary counts from the moment it is decided (the word after it complete).
        phrase = self._phrase_cut(text) if first and self.first_max_words > 0 else None
        for i, ch in enumerate(text):
            if phrase is not None and i >= phrase[1]:
                return phrase[0]
            if ch == "\n":
                if has_words(text[:i]):
                    return i
            elif ch in ".!?":
                decided = self._sentence_end(text, i, final)
                if decided is None:
                    return None  # need more text to know
                if decided:
                    return self._after_closers(text, i + 1)
            elif ch in _CLAUSE and first:
                nxt = i + 1
                if nxt >= len(text):
                    return None
                if text[nxt].isspace() and len(_WORD.findall(text[:i])) >= self.first_min_words:
                    return nxt
        if phrase is not None:
            return phrase[0]
        if len(text) > self.max_chars:
            return _fallback_cut(text, self.max_chars)
        return None

    def _phrase_cut(self, text: str) -> tuple[int, int] | None:
        """The first phrase boundary of ``text``: (where to cut, index at which it is decided), or None.

        The boundary is just before a bare conjunction (or, after ``first_max_words``
        words, a preposition) whose next word is complete and does not end a clause.
        """
        if text.count("(") > text.count(")"):
            return None  # inside brackets: wait for them to close
        tokens = [m for m in _TOKEN.finditer(text) if m.end() < len(text)]  # complete words only
        for k in range(1, len(tokens) - 1):
            word, prev, nxt = tokens[k].group().lower(), tokens[k - 1].group(), tokens[k + 1].group()
            conjunction = word in _CONJUNCTIONS
            copula = word in _COPULAS
            if not (conjunction or copula or word in _PREPOSITIONS):
                continue
            if not _BARE.match(prev) or not _BARE.match(nxt) or "\n" in text[tokens[k - 1].end() : tokens[k].start()]:
                continue  # punctuation next to it: a clause or sentence boundary is there instead
            before = text[: tokens[k].start()]
            count = len(_WORD.findall(before))
            if count < (PHRASE_MIN_WORDS if conjunction else max(PHRASE_MIN_WORDS, self.first_max_words)):
                if not (copula and count > PHRASE_MIN_WORDS):
                    continue
            if copula and (
                prev.lower() in _NOT_A_SUBJECT_END
                or tokens[0].group().lower().strip("\"'\u201c") in _QUESTION_STARTS
                or any(t.group().lower() in _QUESTION_STARTS for t in tokens[max(0, k - 3) : k])
            ):
                continue  # "There is", "what the weather is like", "Is it...": not a long subject
            if before.count('"') % 2 or before.count("\u201c") > before.count("\u201d"):
                continue  # inside a quotation
            if not copula and _binds(word, prev, [t.group().lower() for t in tokens[max(0, k - 4) : k]], conjunction):
                continue
            return tokens[k].start(), tokens[k + 1].end()
        return None

    @staticmethod
    def _after_closers(text: str, j: int) -> int:
        while j < len(text) and text[j] in _CLOSERS:
            j += 1
        return j

    def _sentence_end(self, text: str, i: int, final: bool) -> bool | None:
        """Is the punctuation at ``i`` the end of a sentence? None: not known yet."""
        j = self._after_closers(text, i + 1)
        if j >= len(text):
            return True if final else None
        if not text[j].isspace():
            return False  # 3.14, e.g.x, "?!", ...
        if text[i] != ".":
            return True
        if i > 0 and text[i - 1] == ".":
            return False  # an ellipsis rarely ends the sentence
        token = re.findall("[^\\s(\"'\u201c\u2018]*$", text[:i])[0]
        lower = token.lower()
        if lower in _TITLES or _INITIALISM.match(token) or (len(token) == 1 and token.isupper()):
            return False
        if _NUMBER.match(token) and _SEGMENT_START.search(text[: i - len(token)]):
            return False  # "1. First": the number of a list item
        if lower in _MAYBE_END:
            nxt = text[j:].lstrip()
            if not nxt:
                return True if final else None
            return nxt[0].isupper()
        return True


def _binds(word: str, prev: str, last: list[str], conjunction: bool) -> bool:
    """Does ``word`` belong with the words before it ("between 7 and 9", "Tom and Jerry", "look for")?"""
    low = prev.lower()
    if word in ("and", "or", "nor", "but", "than", "to"):
        if any(c.isdigit() for c in prev) or low in _NUMBER_WORDS or prev[:1].isupper():
            return True  # numbers and names: "7 and 9", "two or three", "Tom and Jerry", "more or less"
        if any(w in _BINDS["and"] for w in last):
            return True  # "between A and B", "both A and B", "either A or B"
        if len(last) >= 2 and (last[-2] in _DETERMINERS or last[-2] in _NUMBER_WORDS):
            return True  # "a beautiful and mysterious body", "three hearts and blue blood"
    if not conjunction:
        if low in _BINDS["_prep"] or low in _AUXILIARIES or prev[:1].isupper() or any(c.isdigit() for c in prev):
            return True  # "look for", "is by making", "Paris in", "10 in"
        return len(last) >= 2 and last[-2] == "to"  # "to sleep on your side": a verb and its complement
    return low in _BINDS.get(word, ())


def _fallback_cut(text: str, limit: int) -> int:
    """Where to cut a sentence that grew too long: the last clause, else the last space."""
    head = text[:limit]
    for marks in (_CLAUSE, " "):
        best = max(head.rfind(m + " ") if m != " " else head.rfind(" ") for m in marks)
        if best > limit // 3:
            return best + 1
    return limit
