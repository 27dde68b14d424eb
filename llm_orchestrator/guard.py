"""Checks on a model reply before it is spoken.

A small model fails in a few ways a listener notices at once: it says the
user's sentence back ("Go forward 10 meters." -> "Go forward 10 meters."),
it copies an earlier answer of its own whatever the question (one copy in
the history makes the next copy likelier, and a session gets stuck on one
answer), or it copies tool answers it saw ("Noted. That's note 5.") although
no tool ran. These are plain string checks on the words of a chunk, a few
microseconds each, so they run on every chunk before it goes to speech.

:class:`ReplyGate` applies them to a streamed reply: the first chunk is held
until it can be judged (a clause of a few words), so a bad start is never
spoken and the turn can ask the model again; a later bad chunk ends the
reply before it is spoken. It also ends a reply after a number of sentences.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

#: A chunk this similar (difflib ratio over words) to the user's words is an echo.
SIMILAR = 0.75
#: Fewer words than this prove nothing either way ("Yes.", "Good morning!" to "Good morning!").
MIN_WORDS = 3
#: A chunk of at least this many words made mostly of runs of an earlier reply is a copy of it.
COPY_WORDS = 5
#: A run this long taken from an earlier reply is a copy wherever it is ("The answer to this question is" is not).
LONG_COPY = 8

#: A chunk ending so ends a sentence or a clause (the chunker's phrase cuts end with a bare word).
_CLAUSE_END = re.compile(r"[.!?…,;:\u2014\u2013][\"')\]\u201d\u2019*_]*$")

#: Phrases that report an action only a tool can do: saving notes, remembering, timers.
_CLAIMS = re.compile(
    r"\b(?:"
    r"noted|"
    r"i(?:'ve| have) (?:noted|saved|added|stored|written|jotted|set|started|created|scheduled|cancelled|canceled|"
    r"deleted|removed|forgotten|remembered|made a note|put it|taken note)|"
    r"i(?:'ll| will) (?:remember|keep (?:that|it|this) in mind|make a note|note (?:that|it|this)|"
    r"set (?:a|the|your|up)|remind you|save (?:it|that|this))|"
    r"(?:note|timer|reminder|alarm)s? (?:is |has been |was )?(?:saved|added|set|started|created|stored|cancelled)|"
    r"that'?s note (?:number )?\d+|"
    r"saved (?:it|that|this|your)|"
    r"added (?:it|that|this) to (?:your|the)"
    r")\b",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped: what two sentences are compared on."""
    return _WORD.findall(text.lower())


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _runs(a: Sequence[str], b: Sequence[str], least: int) -> list[int]:
    """Lengths of the runs of at least ``least`` words that ``a`` shares with ``b``."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [m.size for m in matcher.get_matching_blocks() if m.size >= least]


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return any(list(haystack[i : i + n]) == list(needle) for i in range(len(haystack) - n + 1))


def echoes(text: str, user_text: str) -> bool:
    """The text says the user's words back: all of them, or mostly them.

    Starting an answer with a few of the question's words is fine ("To boil an
    egg, ..."); a sentence that is the question again, or that carries the
    whole question, is not.
    """
    said, heard = words(text), words(user_text)
    if said == heard:
        return bool(said)  # "Good morning!" -> "Good morning!"
    if len(heard) < MIN_WORDS or len(said) < 2:
        return False  # "Hello." -> "Hello there!" is an answer
    if similarity(said, heard) >= SIMILAR or _contains(said, heard):
        return True
    runs = _runs(said, heard, MIN_WORDS)
    return bool(runs) and sum(runs) >= SIMILAR * len(said) and max(runs) >= 0.6 * len(heard)


def copies(text: str, earlier: str) -> bool:
    """The text is an earlier reply's start, holds a long piece of it, or is mostly made of its pieces.

    A shared opening of a few words ("The answer to this...") is a habit, not
    a stuck reply; asking again for it would cost latency for nothing.
    """
    said, before = words(text), words(earlier)
    if said == before:
        return len(said) >= 2  # "What's a joke about?" twice
    if len(said) < COPY_WORDS or not before:
        return False
    if said == before[: len(said)]:
        return True
    if similarity(said, before) >= SIMILAR:
        return True  # the same sentence in other words: "The cat's name is a popular choice."
    runs = _runs(said, before, 4)
    return max(runs, default=0) >= LONG_COPY or (len(said) >= LONG_COPY and sum(runs) >= 0.8 * len(said))


#: Short words that are frequent in one language and rare in the others: enough to tell a sentence's language.
_STOPWORDS = {
    "en": frozenset("the and is are you your it's that this with of to in for what have be can i'm don't".split()),
    "fr": frozenset("le la les et est vous tu une des du pour avec que qui dans pas je c'est sur au".split()),
    "es": frozenset(
        "el la los las y es usted tú una del para con que qué en por uno más muy gracias pero hola".split()
    ),
    "de": frozenset("der die das und ist sie du ein eine nicht mit für ich auf zu von dem den".split()),
    "it": frozenset("il lo la gli le e è una di per che non con sono della questo".split()),
}


def language_of(text: str) -> str | None:
    """The language whose frequent words the text uses most ("en", "fr"...); None when it cannot tell."""
    said = words(text)
    if len(said) < MIN_WORDS + 1:
        return None
    hits = {lang: sum(w in common for w in said) for lang, common in _STOPWORDS.items()}
    best = max(hits, key=lambda lang: hits[lang])
    ranked = sorted(hits.values(), reverse=True)
    return best if ranked[0] >= 2 and ranked[0] > ranked[1] else None


def claims_action(text: str) -> bool:
    """The text says an action was done or will be (noted, remembered, a timer set...)."""
    return _CLAIMS.search(text) is not None


@dataclass(frozen=True)
class Context:
    """What a reply is checked against: the user's message and the exchanges before it."""

    user_text: str
    #: Earlier (question, reply) pairs of the conversation, oldest first.
    exchanges: tuple[tuple[str, str], ...] = ()
    tools_ran: bool = False
    #: The session's language ("en", "fr"...); replies in another one are refused.
    language: str = "en"

    def problem(self, text: str) -> str | None:
        """Why ``text`` must not be spoken (``echo``, ``repeat``, ``claim``, ``language``), or None."""
        if echoes(text, self.user_text):
            return "echo"
        asked = words(self.user_text)
        for question, reply in self.exchanges:
            if similarity(asked, words(question)) < SIMILAR and copies(text, reply):
                return "repeat"  # (the same question again may get the same answer)
        if not self.tools_ran and claims_action(text):
            return "claim"
        spoken = language_of(text)
        if spoken is not None and spoken != self.language and self.language in _STOPWORDS:
            return "language"  # e.g. Spanish after a question about Spanish words
        return None

    def undecided(self, text: str) -> bool:
        """Too little of the reply to judge: it could still turn into an echo or a copy."""
        said = words(text)
        heard = words(self.user_text)
        if said == heard[: len(said)]:
            return True  # the user's words so far: "Feels like these days," (or nothing yet)
        opens_earlier = any(said == words(reply)[: len(said)] for _, reply in self.exchanges)
        # Maybe an earlier reply again ("I'm sorry," then the rest of it): judge it with the next chunk.
        if len(said) < COPY_WORDS and opens_earlier:
            return True
        if len(said) < LONG_COPY and not _CLAUSE_END.search(text.strip()):
            # Cut in mid-clause, before a conjunction ("You have a meeting in ten minutes"): alone it proves
            # nothing when it is mostly the user's words or an earlier reply's opening; judge it with the
            # rest of its sentence, as the whole clause would have been.
            return opens_earlier or sum(_runs(said, heard, MIN_WORDS)) >= SIMILAR * len(said)
        return False


#: ``ReplyGate.stopped`` when the reply reached its sentence limit (not a fault of the reply).
LONG_ENOUGH = "sentence limit"

_SENTENCE_END = re.compile(r"[.!?…][\"')\]\u201d\u2019]*$")


@dataclass
class ReplyGate:
    """Decides, chunk by chunk, what of a streamed reply may be spoken.

    :meth:`offer` takes the chunks the chunker cut and returns those to speak
    now. ``rejected`` is set when the first chunk is bad (nothing was said:
    the caller may ask the model again); ``stopped`` when a later chunk is bad
    or the sentence limit is reached (the caller ends the reply).
    """

    context: Context | None  # None: no checks, only the sentence limit
    max_sentences: int = 0  # 0: no limit
    opened: bool = False
    rejected: str | None = None
    stopped: str | None = None
    sentences: int = 0
    said: list[str] = field(default_factory=list)
    _held: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.rejected is not None or self.stopped is not None

    def offer(self, chunks: Sequence[str], final: bool = False) -> list[str]:
        if self.done:
            return []
        context = self.context
        if not self.opened:
            self._held += chunks
            start = " ".join(self._held)
            if context is not None:
                if not start or (context.undecided(start) and not final):
                    return []
                self.rejected = context.problem(start)
                if self.rejected is not None:
                    return []
            self.opened, chunks, self._held = True, self._held, []
            return self._count(chunks)
        out: list[str] = []
        for chunk in chunks:
            reason = context.problem(chunk) if context is not None else None
            if reason is not None:
                self.stopped = reason
                break
            out += self._count([chunk])
            if self.stopped:
                break
        return out

    def _count(self, chunks: list[str]) -> list[str]:
        out = []
        for chunk in chunks:
            out.append(chunk)
            self.said.append(chunk)
            if _SENTENCE_END.search(chunk.strip()):
                self.sentences += 1
                if self.max_sentences and self.sentences >= self.max_sentences:
                    self.stopped = LONG_ENOUGH
                    break
        return out
