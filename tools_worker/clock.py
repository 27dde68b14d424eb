"""The current date and time, spoken naturally, in the user's time zone or the one asked for."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable
from datetime import datetime, tzinfo

from voicefleet.catalogue import TimeArgs, TimeNow
from voicefleet.messages import ToolCall

from .registry import Outcome, Tool, ToolError, bind


def spoken_time(moment: datetime) -> str:
    """``3:05 PM``: 12-hour clock without a leading zero."""
    return f"{moment.hour % 12 or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def spoken_date(moment: datetime) -> str:
    """``Monday, November 23``."""
    return f"{moment:%A}, {moment:%B} {moment.day}"


@functools.cache
def _zones_by_city() -> dict[str, str]:
    # "tokyo" -> "Asia/Tokyo", so that a bare city name ("Tokyo", "new york") works too.
    cities: dict[str, str] = {}
    for name in sorted(zoneinfo.available_timezones()):
        cities.setdefault(name.rsplit("/", 1)[-1].replace("_", " ").casefold(), name)
    return cities


def find_zone(name: str) -> str | None:
    """The IANA name meant by ``name`` ("Asia/Tokyo", "asia/tokyo", "Tokyo", "New York"), or None."""
    wanted = name.strip().replace(" ", "_")
    try:
        zoneinfo.ZoneInfo(wanted)
        return wanted
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    folded = {z.casefold(): z for z in zoneinfo.available_timezones()}
    return folded.get(wanted.casefold()) or _zones_by_city().get(name.strip().replace("_", " ").casefold())


def place(zone: str) -> str:
    """What to call a zone when speaking: "Asia/Tokyo" -> "Tokyo"; "" for UTC-like names without a city."""
    return zone.rsplit("/", 1)[-1].replace("_", " ") if "/" in zone else ""


class Clock:
    """``time.now``: the user's zone comes from settings ("" means the system's own)."""

    def __init__(self, zone: str = "", now: Callable[[tzinfo | None], datetime] = datetime.now) -> None:
        self.zone_name = zone
        self._now = now

    def now(self, zone: str = "") -> datetime:
        name = zone or self.zone_name
        return self._now(zoneinfo.ZoneInfo(name)) if name else self._now(None).astimezone()

    async def tell(self, call: ToolCall, args: TimeArgs) -> Outcome:
        zone = ""
        if args.timezone:
            found = find_zone(args.timezone)
            if found is None:
                raise ToolError(f"I don't know a time zone called {args.timezone}; "
                                "try a city, like Tokyo or Europe/Paris.", "unknown_zone")
            zone = found
        moment = self.now(zone)
        where = place(zone)
        if not zone:
            text = f"It's {spoken_time(moment)} on {spoken_date(moment)}."
        else:
            # Elsewhere, the day matters only when it is not the user's own.
            day = "" if moment.date() == self.now().date() else f" on {moment:%A}"
            at = f" in {where}" if where else f" {zone}"
            text = f"It's {spoken_time(moment)}{day}{at}."
        data = TimeNow(iso=moment.isoformat(timespec="seconds"), timezone=zone or str(moment.tzinfo), place=where,
                       weekday=f"{moment:%A}", date=moment.date().isoformat())
        return Outcome(True, text, data)

    def tools(self) -> list[Tool]:
        return [bind("time.now", self.tell)]
