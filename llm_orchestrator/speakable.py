"""Turn reply text into what a speech synthesizer should say.

The client gets the model's text as written (markdown and all); the voice
gets it without the markup that would otherwise be read out literally or as
noise: emphasis markers, headings, bullets, links, emoji, table pipes.
Code blocks never reach this module: the chunker replaces them first.
"""

from __future__ import annotations

import re

# Emoji and pictographs, with the joiners and modifiers that glue them together.
_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # mahjong .. symbols & pictographs extended-A
    "\U00002600-\U000027bf"  # misc symbols, dingbats
    "\U00002b00-\U00002bff"  # arrows, stars
    "\U0001f1e6-\U0001f1ff"  # regional indicators (flags)
    "\U0000fe0e\U0000fe0f"  # variation selectors
    "\U0000200d"  # zero-width joiner
    "\U000020e3"  # keycap
    "]+"
)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"\bhttps?://(?:www\.)?([^/\s)]+?)(?:[/?#][^\s)]*?)?(?=[.,;:!?]?(?:\s|$|\)))")
_INLINE_CODE = re.compile(r"`+([^`]*)`+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_QUOTE = re.compile(r"^\s*>+\s?", re.MULTILINE)
_BULLET = re.compile(r"^\s*[-*+•]\s+", re.MULTILINE)
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$", re.MULTILINE)
# Emphasis: **x**, __x__, *x*, _x_ (an underscore inside a word, as in
# snake_case, is left alone).
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EM_STAR = re.compile(r"\*(?=\S)([^*\n]+?)(?<=\S)\*")
_EM_UNDERSCORE = re.compile(r"(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)")
_STRIKE = re.compile(r"~~(.+?)~~")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$", re.MULTILINE)
_TABLE_EDGE = re.compile(r"^[ \t]*\||\|[ \t]*$", re.MULTILINE)
_LEFTOVER = re.compile(r"[*#|`~]+|(?<!\w)_+|_+(?!\w)")
_SPACES = re.compile(r"\s+")
_WORDY = re.compile(r"[^\W_]")


def speakable(text: str) -> str:
    """``text`` with markdown, emoji and URLs reduced to plain speakable words."""
    text = _TABLE_RULE.sub(" ", text)
    text = _RULE.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(r"\1", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = _STRONG.sub(r"\2", text)
    text = _EM_STAR.sub(r"\1", text)
    text = _EM_UNDERSCORE.sub(r"\1", text)
    text = _STRIKE.sub(r"\1", text)
    text = _TABLE_EDGE.sub("", text)
    text = text.replace("|", ",")
    text = _EMOJI.sub("", text)
    text = _LEFTOVER.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"^[,;:\s]+", "", text)
    return text


def has_words(text: str) -> bool:
    """True when ``text`` has something to say (not only punctuation)."""
    return bool(_WORDY.search(text))
