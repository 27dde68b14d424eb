"""The current date and time, spoken naturally in the user's time zone."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime, tzinfo

from pydantic import Field

from voicefleet.messages import ToolCall

from .registry import Outcome, Tool, ToolArgs, ToolError


def spoken_time(moment: datetime) -> str:
    """``3:05 PM``: 12-hour clock without a leading zero."""
    return f"{moment.hour % 12 or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def spoken_date(moment: datetime) -> str:
    """``Monday, November 23``."""
    return f"{moment:%A}, {moment:%B} {moment.day}"


class TimeArgs(ToolArgs):
    timezone: str | None = Field(None, description="IANA time zone, e.g. Asia/Tokyo (default: the user's)")


class Clock:
    """``time.now``: the zone comes from settings ("" means the system's own)."""

    def __init__(self, zone: str = "", now: Callable[[tzinfo | None], datetime] = datetime.now) -> None:
        self.zone_name = zone
        self._now = now

    def zone(self, name: str | None = None) -> tzinfo | None:
        name = name or self.zone_name
        if not name:
            return None  # system local time
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ToolError(f"I don't know the time zone {name!r}.") from exc

    def now(self, zone: str | None = None) -> datetime:
        tz = self.zone(zone)
        return self._now(tz) if tz is not None else self._now(None).astimezone()

    async def tell(self, call: ToolCall, args: TimeArgs) -> Outcome:
        moment = self.now(args.timezone)
        where = f" in {args.timezone.split('/')[-1].replace('_', ' ')}" if args.timezone else ""
        text = f"It's {spoken_time(moment)}{where} on {spoken_date(moment)}."
        data = {"iso": moment.isoformat(timespec="seconds"), "timezone": str(moment.tzinfo),
                "weekday": f"{moment:%A}", "date": moment.date().isoformat()}
        return Outcome(True, text, data)

    def tools(self) -> list[Tool]:
        return [Tool("time.now", "The current date and time.", TimeArgs, self.tell, per_user=False)]
