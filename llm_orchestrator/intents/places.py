"""Place names to IANA time zones: "Tokyo" -> ``Asia/Tokyo``.

Cities of the tz database are found by their own name ("new york", "sydney");
countries, regions and other cities come from the ``places`` table of each
language's template file.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from functools import cache


def _key(name: str) -> str:
    text = unicodedata.normalize("NFKD", name.lower()).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", " ", text).strip()
    return re.sub(r"^(?:the|la|le|les|l)\s+", "", text)


_NOW = re.compile(r"\b(?:right now|now|today|currently|at the moment|en ce moment|maintenant|actuellement)\b",
                  re.IGNORECASE)


@cache
def _tz_cities() -> dict[str, str]:
    cities: dict[str, str] = {}
    for zone in sorted(zoneinfo.available_timezones()):
        if "/" not in zone or zone.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/")):
            continue
        cities.setdefault(_key(zone.rsplit("/", 1)[-1].replace("_", " ")), zone)
    return cities


class Places:
    """Resolves a spoken place to a time zone name."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = {_key(k): v for k, v in aliases.items()}

    def zone(self, place: str) -> str | None:
        key = _key(_NOW.sub(" ", place))
        if not key:
            return None
        return self.aliases.get(key) or _tz_cities().get(key)
