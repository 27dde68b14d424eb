"""Markdown to plain text a voice can read.

The LLM writes markdown for the screen; the ear wants none of its marks. Every
line-level structure (header, bullet, table row) becomes its own sentence so
the voice pauses where the eye would see a break.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(```|~~~)[\w+#.-]*\s*$", re.MULTILINE)
_INLINE_CODE = re.compile(r"`+([^`]*)`+")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?://|mailto:)[^>\s]+)>")
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+(.*)$")
_QUOTE = re.compile(r"^\s*(?:>\s?)+(.*)$")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])")
_STRIKE = re.compile(r"~~(.+?)~~")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")

_SENTENCE_END = (".", "!", "?", ":", ";", ",")


def _as_sentence(line: str) -> str:
    """End a structural line with a full stop so the voice pauses after it."""
    line = line.strip()
    if line and not line.endswith(_SENTENCE_END):
        line += "."
    return line


def _line(line: str) -> str:
    if _RULE.match(line) or (_TABLE_SEPARATOR.match(line) and "-" in line):
        return ""
    if m := _HEADER.match(line):
        return _as_sentence(m.group(1))
    if m := _QUOTE.match(line):
        line = m.group(1)
    if m := _BULLET.match(line):
        return _as_sentence(m.group(1))
    if line.count("|") >= 2:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        return _as_sentence(", ".join(c for c in cells if c))
    return line


def strip_markdown(text: str) -> str:
    """Plain text with markdown marks removed and line structure kept as pauses."""
    text = _FENCE.sub("", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    lines = [_line(line) for line in text.splitlines()]
    structured = len([line for line in lines if line.strip()]) > 1
    if structured:
        # Several lines: each is a unit of its own (list items, paragraphs).
        lines = [_as_sentence(line) for line in lines]
    text = " ".join(line for line in lines if line.strip())
    text = _BOLD.sub(r"\2", text)
    text = _STRIKE.sub(r"\1", text)
    text = _ITALIC_STAR.sub(r"\1", text)
    text = _ITALIC_UNDERSCORE.sub(r"\1", text)
    return text
