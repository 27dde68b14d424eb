"""Text for speech: what the screen shows, rewritten as what a person would say.

Piper reads letters and digits through espeak, which spells URLs letter by
letter, reads "$5.99" as "dollar five point nine nine" and "7pm" as "seven
pm". :func:`normalize` rewrites such text into words first. Rules run in a
fixed order, most specific first (an email before a bare "@", a date before a
range, money before plain numbers), and each one leaves only words behind, so
a later rule never sees half of an earlier match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from . import numbers
from .markdown import strip_markdown

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

_MONTHS = ("January February March April May June July August September October November December").split()
_MONTH_BY_PREFIX = {m[:3].lower(): m for m in _MONTHS}
_MONTH_NAME = (
    r"(Jan(?:uary|\.)?|Feb(?:ruary|\.)?|Mar(?:ch|\.)?|Apr(?:il|\.)?|May|Jun(?:e|\.)?|Jul(?:y|\.)?"
    r"|Aug(?:ust|\.)?|Sep(?:tember|t\.?|\.)?|Oct(?:ober|\.)?|Nov(?:ember|\.)?|Dec(?:ember|\.)?)"
)

_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"

# name (singular, plural), minor unit (singular, plural)
_CURRENCIES = {
    "$": (("dollar", "dollars"), ("cent", "cents")),
    "USD": (("dollar", "dollars"), ("cent", "cents")),
    "€": (("euro", "euros"), ("cent", "cents")),
    "EUR": (("euro", "euros"), ("cent", "cents")),
    "£": (("pound", "pounds"), ("penny", "pence")),
    "GBP": (("pound", "pounds"), ("penny", "pence")),
    "¥": (("yen", "yen"), None),
    "JPY": (("yen", "yen"), None),
    "₹": (("rupee", "rupees"), ("paisa", "paise")),
}
_SCALE_WORDS = {"k": "thousand", "m": "million", "bn": "billion", "b": "billion"}

_UNITS = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ft": ("foot", "feet"),
    "mi": ("mile", "miles"),
    "ml": ("milliliter", "milliliters"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "kW": ("kilowatt", "kilowatts"),
    "GHz": ("gigahertz", "gigahertz"),
    "MHz": ("megahertz", "megahertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "Hz": ("hertz", "hertz"),
    "TB": ("terabyte", "terabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "MB": ("megabyte", "megabytes"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "ms": ("millisecond", "milliseconds"),
}
_UNIT_NAMES = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_WEEKDAYS = {d[:3].lower(): d for d in "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()}
_WEEKDAY = r"(Mon|Tue|Tues|Wed|Thu|Thur|Thurs|Fri|Sat|Sun)"
_FRACTIONS = {2: ("half", "halves"), 4: ("quarter", "quarters")}
_YEAR_CUES = {
    "in", "since", "by", "from", "until", "till", "of", "year", "around", "before", "after",
    "during", "early", "late", "mid", "summer", "winter", "spring", "autumn", "fall", "circa",
    "to", "and", "through",
}  # fmt: skip
_ABBREVIATIONS = {
    "e.g.": "for example",
    "i.e.": "that is",
    "etc.": "et cetera",
    "vs.": "versus",
    "vs": "versus",
    "approx.": "approximately",
}
_SYMBOLS = {
    "->": " to ",
    "=>": " to ",
    "<=": " at most ",
    ">=": " at least ",
    "!=": " is not equal to ",
    "&": " and ",
    "@": " at ",
    "+": " plus ",
    "=": " equals ",
    "±": " plus or minus ",
    "\u00d7": " times ",
    "÷": " divided by ",
    "≈": " about ",
    "≠": " is not equal to ",
    "≤": " at most ",
    "≥": " at least ",
    "<": " less than ",
    ">": " greater than ",
    "→": " to ",
    "%": " percent",
    "°": " degrees",
    "§": " section ",
    "~": " about ",
    "/": " slash ",
}
_PUNCTUATION = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...",
    "\u2013": "-", "\u2014": ", ", "\u2212": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
}  # fmt: skip


# ---------------------------------------------------------------------------
# readings
# ---------------------------------------------------------------------------


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _amount(text: str) -> str:
    """A written number (commas, decimals, leading zeros) as words."""
    text = text.replace(",", "")
    if text.count(".") > 1:  # a version number: 1.2.3
        return " point ".join(numbers.cardinal(int(p)) for p in text.split(".") if p)
    if "." in text:
        return numbers.decimal(text)
    if len(text) > 1 and text.startswith("0"):
        return numbers.digits(text)
    return numbers.cardinal(int(text))


def _plural(count_text: str, names: tuple[str, str]) -> str:
    return names[0] if count_text.replace(",", "") in ("1", "1.0") else names[1]


def _month(text: str) -> str:
    return _MONTH_BY_PREFIX[text[:3].lower()]


def _date(month: int, day: int, year: str | None) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    spoken = f"{_MONTHS[month - 1]} {numbers.ordinal(day)}"
    if year:
        full = int(year) + (2000 if len(year) == 2 else 0)
        spoken += f", {numbers.year(full)}"
    return spoken


def _clock(hour: int, minute: int, meridiem: str) -> str | None:
    if hour > 24 or minute > 59 or (meridiem and not 1 <= hour <= 12):
        return None
    words = numbers.cardinal(hour)
    if minute == 0:
        words += "" if meridiem or hour > 12 else " o'clock"
        if hour > 12 and not meridiem:
            words += " hundred"
    elif minute < 10:
        words += f" oh {numbers.cardinal(minute)}"
    else:
        words += f" {numbers.cardinal(minute)}"
    if meridiem:
        words += " A M" if meridiem.lower() == "a" else " P M"
    return words


# ---------------------------------------------------------------------------
# rules (pattern, replacement), applied in order
# ---------------------------------------------------------------------------


_EMAIL_MARKS = {".": " dot ", "_": " underscore ", "+": " plus ", "-": " dash "}


def _email(m: re.Match[str]) -> str:
    user, _, domain = m.group(0).partition("@")
    user = re.sub(r"[._+-]", lambda s: _EMAIL_MARKS[s.group(0)], user)
    return f"{user} at {_domain(domain)}"


def _domain(host: str) -> str:
    host = host.lower().removeprefix("www.")
    return " dot ".join(part.replace("-", " dash ") for part in host.split(".") if part)


def _url(m: re.Match[str]) -> str:
    url = m.group(0)
    trailing = ""
    while url and url[-1] in ".,;:!?)'\"":
        trailing = url[-1] + trailing
        url = url[:-1]
    host = re.sub(r"^[a-z]+://", "", url, flags=re.IGNORECASE)
    host = re.split(r"[/?#:]", host, maxsplit=1)[0]
    return _domain(host) + trailing


def _iso_date(m: re.Match[str]) -> str:
    spoken = _date(int(m.group(2)), int(m.group(3)), m.group(1))
    return spoken if spoken else m.group(0).replace("-", " ")


def _slash_date(m: re.Match[str]) -> str:
    spoken = _date(int(m.group(1)), int(m.group(2)), m.group(3))
    return spoken if spoken else f"{m.group(1)} {m.group(2)} {m.group(3)}"


def _month_day(m: re.Match[str]) -> str:
    return _date(_MONTHS.index(_month(m.group(1))) + 1, int(m.group(2)), m.group(4)) or m.group(0)


def _day_month(m: re.Match[str]) -> str:
    day = int(m.group(1))
    if not 1 <= day <= 31:
        return m.group(0)
    article = "" if m.string[: m.start()].lower().endswith("the ") else "the "
    spoken = f"{article}{numbers.ordinal(day)} of {_month(m.group(3))}"
    if m.group(4):
        spoken += f", {numbers.year(int(m.group(4)))}"
    return spoken


def _fraction_or_date(m: re.Match[str]) -> str:
    top, bottom = int(m.group(1)), int(m.group(2))
    if (top, bottom) == (24, 7):
        return "twenty-four seven"
    if 0 < top < bottom <= 10:
        names = _FRACTIONS.get(bottom) or (numbers.ordinal(bottom),) * 2
        name = names[0] if top == 1 else (names[1] if bottom in _FRACTIONS else names[1] + "s")
        return f"{numbers.cardinal(top)} {name}"
    spoken = _date(top, bottom, None)
    return spoken if spoken else f"{numbers.cardinal(top)} over {numbers.cardinal(bottom)}"


def _time(m: re.Match[str]) -> str:
    spoken = _clock(int(m.group(1)), int(m.group(2) or 0), (m.group(3) or "")[:1])
    return spoken if spoken else m.group(0).replace(":", " ")


def _money(symbol: str, amount: str, scale: str | None) -> str:
    names, minor = _CURRENCIES[symbol]
    if scale:
        scale_word = _SCALE_WORDS.get(scale.lower(), scale.lower())
        return f"{_amount(amount)} {scale_word} {names[1]}"
    whole, _, cents = amount.replace(",", "").partition(".")
    if minor and len(cents) == 2:
        parts = []
        if int(whole or "0"):
            parts.append(f"{numbers.cardinal(int(whole))} {_plural(whole, names)}")
        if int(cents) or not parts:
            parts.append(f"{numbers.cardinal(int(cents))} {_plural(str(int(cents)), minor)}")
        return " and ".join(parts)
    return f"{_amount(amount)} {_plural(amount, names)}"


def _money_before(m: re.Match[str]) -> str:
    sign = "minus " if m.group(1) else ""
    return sign + _money(m.group(2), m.group(3), m.group(4))


def _money_after(m: re.Match[str]) -> str:
    return _money(m.group(2), m.group(1), None)


def _percent(m: re.Match[str]) -> str:
    return f"{_signed(m.group(1), m.group(2))} percent"


def _signed(sign: str | None, amount: str) -> str:
    return ("minus " if sign else "") + _amount(amount)


def _degrees(m: re.Match[str]) -> str:
    scale = {"c": " Celsius", "f": " Fahrenheit", "k": " Kelvin"}.get((m.group(3) or "").lower(), "")
    unit = "degree" if m.group(2) in ("1", "1.0") and not m.group(1) else "degrees"
    return f"{_signed(m.group(1), m.group(2))} {unit}{scale}"


def _unit(m: re.Match[str]) -> str:
    return f"{_amount(m.group(1))} {_plural(m.group(1), _UNITS[m.group(2)])}"


def _ordinal(m: re.Match[str]) -> str:
    return numbers.ordinal(_int(m.group(1)))


def _range(m: re.Match[str]) -> str:
    return f"{_number_in_context(m, 1)} to {_amount(m.group(2))}"


def _phone(m: re.Match[str]) -> str:
    groups = re.findall(r"\d+", m.group(0))
    return ", ".join(numbers.digits(g) for g in groups)


def _number_in_context(m: re.Match[str], group: int = 0) -> str:
    text = m.group(group)
    plain = text.isdigit() and len(text) == 4 and not text.startswith("0")
    if plain:
        before = m.string[: m.start(group)].split()
        cue = before[-1].lower().strip(",.(") if before else ""
        if cue in _YEAR_CUES or cue.capitalize() in _MONTHS:
            return numbers.year(int(text))
    return _amount(text)


def _negative(m: re.Match[str]) -> str:
    return "minus " + _amount(m.group(1))


def _abbreviation(m: re.Match[str]) -> str:
    return _ABBREVIATIONS[m.group(0).lower()]


def _hash_number(m: re.Match[str]) -> str:
    return "number " + _amount(m.group(1))


def _decade(m: re.Match[str]) -> str:
    century, decade = m.group(1), m.group(2)
    if decade == "00":
        return f"{numbers.cardinal(int(century))} hundreds" if century else m.group(0)
    words = numbers.year(int(century + decade)) if century else numbers.cardinal(int(decade))
    return words[:-1] + "ies"  # "ninety" -> "nineties"


def _weekday_range(m: re.Match[str]) -> str:
    return f"{_WEEKDAYS[m.group(1)[:3].lower()]} to {_WEEKDAYS[m.group(2)[:3].lower()]}"


_RULES: list[Rule] = [
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), _email),
    (re.compile(r"\b(?:https?://|www\.)[^\s<>()\[\]]+", re.IGNORECASE), _url),
    (
        re.compile(
            r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|dev|ai|app|edu|gov|co\.uk|co|uk|de|fr)\b"
            r"(?:/[^\s<>()]*)?",
            re.IGNORECASE,
        ),
        _url,
    ),
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), _iso_date),
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b"), _slash_date),
    (re.compile(rf"\b{_MONTH_NAME}\s+(\d{{1,2}})(st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?"), _month_day),
    (re.compile(rf"\b(\d{{1,2}})(st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_NAME}(?:,?\s+(\d{{4}})\b)?"), _day_month),
    (re.compile(r"(?:\+?1[ .-])?\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b|\b\d{3}-\d{4}\b"), _phone),
    (re.compile(rf"\b{_WEEKDAY}\.?\s?-\s?{_WEEKDAY}(?!\w)"), _weekday_range),
    # "9am-5pm": the dash between two times reads "to"
    (re.compile(r"(?<=[ap]m)\s?-\s?(?=\d)|(?<=[ap]\.m\.)\s?-\s?(?=\d)", re.IGNORECASE), lambda m: " to "),
    # "p.m." keeps its dot as a full stop unless the sentence goes on in lower case.
    (re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\b(?:\.(?=\s+[a-z,]))?", re.IGNORECASE), _time),
    (re.compile(r"\b(\d{1,2}):(\d{2})(?::\d{2})?()\b"), _time),
    (re.compile(r"\b(\d+):(\d+)\b"), lambda m: f"{_amount(m.group(1))} to {_amount(m.group(2))}"),  # 16:9
    (re.compile(r"\b(\d{1,2})/(\d{1,2})\b"), _fraction_or_date),
    (
        re.compile(
            rf"(-)?(\$|€|£|¥|₹)\s?({_NUMBER})(?:\s?(k|bn|m|b|thousand|million|billion|trillion)\b)?", re.IGNORECASE
        ),
        _money_before,
    ),
    (re.compile(rf"\b({_NUMBER})\s?(€|£|¥|USD|EUR|GBP|JPY)(?!\w)"), _money_after),
    (re.compile(rf"(?<![\w.])(-)?({_NUMBER})\s?%"), _percent),
    (re.compile(rf"(?<![\w.])(-)?({_NUMBER})\s?°\s?([CFK](?![a-z]))?"), _degrees),
    (re.compile(rf"\b({_NUMBER})\s?({_UNIT_NAMES})(?![\w/])"), _unit),
    (re.compile(r"\b(\d[\d,]*)(?:st|nd|rd|th)\b", re.IGNORECASE), _ordinal),
    (re.compile(r"(?<![\w'])'?(\d{2})?(\d0)'?s\b"), _decade),
    (re.compile(rf"\b({_NUMBER})x\b"), lambda m: f"{_amount(m.group(1))} times"),
    (re.compile(r"\b([CF])#"), lambda m: f"{m.group(1)} sharp"),
    (re.compile(r"#(\d+)\b"), _hash_number),
    (re.compile(r"(?<![\w.-])(\d{1,4})-(\d{1,4})\b(?!-\d)"), _range),
    (re.compile(rf"(?<![\w.-])-({_NUMBER})\b"), _negative),
    (re.compile(r"\d+(?:\.\d+){2,}"), lambda m: _amount(m.group(0))),
    # "mp3", "A4": a digit glued to letters is read as a word of its own.
    (re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])"), lambda m: " "),
    (re.compile(_NUMBER), _number_in_context),
    (re.compile(r"(?<!\w)(?:e\.g\.|i\.e\.|etc\.|vs\.?|approx\.)(?!\w)", re.IGNORECASE), _abbreviation),
]

_SYMBOL_PATTERN = re.compile("|".join(re.escape(s) for s in sorted(_SYMBOLS, key=len, reverse=True)))
_AND_OR = re.compile(r"\band/or\b", re.IGNORECASE)
_WORD_SLASH = re.compile(r"\b([a-z]+)/([a-z]+)\b")
_LEFTOVER_MARKS = re.compile(r"[*_`|\[\]{}#\\^]")
_SPACES = re.compile(r"[ \t]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?;:])")
_REPEATED_PUNCT = re.compile(r"([,.!?;:])(?:\s*[,;:])+")


_EMOJI_JOINERS = {"\u200d", "\ufe0e", "\ufe0f"}


def _drop_symbols_and_emoji(text: str) -> str:
    # Emoji and pictographs (category So) have no reading; espeak would spell their names.
    return "".join(
        " " if unicodedata.category(ch) in ("So", "Cs", "Co") else ch
        for ch in text
        if ch not in _EMOJI_JOINERS and not "\U0001f3fb" <= ch <= "\U0001f3ff"  # skin tones
    )


def normalize(text: str) -> str:
    """Rewrite ``text`` (markdown, numbers, symbols...) into words to be spoken."""
    for src, dst in _PUNCTUATION.items():
        text = text.replace(src, dst)
    text = strip_markdown(text)
    for pattern, replace in _RULES:
        text = pattern.sub(replace, text)
    text = _AND_OR.sub("and or", text)
    text = _WORD_SLASH.sub(r"\1 or \2", text)  # "yes/no"; other slashes are read as "slash"
    text = _SYMBOL_PATTERN.sub(lambda m: _SYMBOLS[m.group(0)], text)
    text = _drop_symbols_and_emoji(text)
    text = _LEFTOVER_MARKS.sub(" ", text)
    text = _SPACES.sub(" ", text.replace("\n", " "))
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    return text.strip(" ,;:")
