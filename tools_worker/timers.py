"""Timers by voice: set, list, cancel; when one ends, the assistant says so on the user's sessions.

Timers live in Redis so any tools process can fire them and a restarted
worker loses none: the hash ``keys.timer(id)`` describes one, the sorted set
``keys.timers`` orders all of them by due time, ``keys.user_timers(user)``
lists one user's. Firing claims due timers atomically with a Lua script that
pushes their score a lease into the future: while processes live, exactly one
fires each timer; if that one dies mid-fire, another fires it once the lease
runs out (late, never lost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from voicefleet.bus import REDIS_DOWN, Backoff, Bus
from voicefleet.catalogue import CancelTimerArgs, NoArgs, SetTimerArgs, TimerInfo, TimerList, TimersCancelled, TimerSet
from voicefleet.messages import Notice, SpeakRequest, ToolCall, new_id
from voicefleet.sessions import Sessions

from .phrases import count, duration, duration_adjective, join
from .registry import Outcome, Tool, ToolError, bind

log = logging.getLogger(__name__)

LEASE_S = 30.0

# Claim up to ARGV[3] timers due by ARGV[1]: move them to ARGV[2] (the lease end) and return them.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


@dataclass
class Timer:
    """One timer of one user; a ``reminder`` has an action as its label ("check the oven")."""

    id: str
    user: str
    label: str
    seconds: float
    due: float
    reminder: bool = False

    @classmethod
    def from_hash(cls, timer_id: str, fields: dict[Any, Any]) -> Timer:
        f = {_text(k): _text(v) for k, v in fields.items()}
        return cls(timer_id, f["user"], f.get("label", ""), float(f["seconds"]), float(f["due"]),
                   f.get("reminder") == "1")

    def to_hash(self) -> dict[Any, Any]:
        return {"user": self.user, "label": self.label, "seconds": repr(self.seconds), "due": repr(self.due),
                "reminder": "1" if self.reminder else "0"}

    @property
    def name(self) -> str:
        """How to call it: "pasta timer", "reminder to check the oven", or "5 minute timer"."""
        if self.reminder:
            return f"reminder to {self.label}"
        return f"{self.label} timer" if self.label else f"{duration_adjective(self.seconds)} timer"

    def done_message(self) -> str:
        if self.reminder:
            return f"Time to {self.label}."
        label = f" {self.label}" if self.label else ""
        return f"Your {duration_adjective(self.seconds)}{label} timer is done."

    def set_message(self) -> str:
        if self.reminder:
            return f"Okay, I'll remind you to {self.label} in {duration(self.seconds)}."
        what = f"{self.label[:1].upper()}{self.label[1:]} timer" if self.label else "Timer"
        return f"{what} set for {duration(self.seconds)}."

    def public(self, now: float) -> TimerInfo:
        return TimerInfo(id=self.id, label=self.label, reminder=self.reminder, seconds=self.seconds, due=self.due,
                         remaining_s=max(0.0, round(self.due - now, 1)))


def _label(value: str | None) -> str:
    words = (value or "").strip().rstrip(".!").split()
    if words and words[-1].lower() == "timer":  # "pasta timer" -> "pasta": we add "timer" ourselves
        words = words[:-1]
    return " ".join(words)


# Verbs a reminder starts with ("check the oven", "call mum"); a label like "pasta" or "egg 3" is a thing.
_ACTIONS = frozenset(
    "ask book bring buy call change check clean close collect cook do drink eat email feed fetch finish flip get "
    "give go leave let lock make move open order pack pay phone pick plug post put read remove reply ring send "
    "set start stir stop switch take text tidy turn unplug visit wake walk wash watch water write".split()
)


# "remind me to call my mother" is said back as "Time to call your mother."
_SECOND_PERSON = {"my": "your", "me": "you", "i": "you", "myself": "yourself", "mine": "yours", "i'm": "you're"}


def split_reminder(label: str, said: bool | None) -> tuple[str, bool]:
    """The label as it will be spoken, and whether it is a reminder (the caller's word wins)."""
    words = label.split()
    if words and words[0].lower() == "to":  # "to check the oven"
        words = words[1:]
        said = True if said is None else said
    for lead in (["remind", "me", "to"], ["remind", "me"], ["remember", "to"]):
        if [w.lower() for w in words[: len(lead)]] == lead:
            words = words[len(lead):]
            said = True if said is None else said
    if said is None:
        said = bool(words) and words[0].lower() in _ACTIONS
    if said:
        words = [_SECOND_PERSON.get(w.lower(), w) for w in words]
    text = " ".join(words)
    return text, bool(said and text)


class Timers:
    """The ``timer.*`` tools and the loop that fires due timers."""

    def __init__(self, bus: Bus, max_seconds: float, max_per_user: int, poll_s: float) -> None:
        self.bus, self.keys = bus, bus.keys
        self.sessions = Sessions(bus)
        self.max_seconds, self.max_per_user, self.poll_s = max_seconds, max_per_user, poll_s
        self._claim = bus.redis.register_script(_CLAIM)
        self.fired = 0

    # --- tools -------------------------------------------------------------
    async def set(self, call: ToolCall, args: SetTimerArgs) -> Outcome:
        if args.seconds < 1:
            raise ToolError("A timer needs to run for at least one second.")
        if args.seconds > self.max_seconds:
            raise ToolError(f"I can only set timers up to {duration(self.max_seconds)}.")
        existing = await self.mine(call.user)
        if len(existing) >= self.max_per_user:
            raise ToolError(f"You already have {count(len(existing), 'timer')}; cancel one first.")
        label, reminder = split_reminder(_label(args.label), args.reminder)
        timer = Timer(call.call_id, call.user, label, float(args.seconds), time.time() + args.seconds, reminder)
        pipe = self.bus.redis.pipeline(transaction=True)
        pipe.hset(self.keys.timer(timer.id), mapping=timer.to_hash())
        # A forgotten hash (fleet down for a day) expires by itself.
        pipe.expire(self.keys.timer(timer.id), int(timer.seconds + 86400))
        pipe.zadd(self.keys.timers, {timer.id: timer.due})
        pipe.zadd(self.keys.user_timers(call.user), {timer.id: timer.due})
        await pipe.execute()
        return Outcome(True, timer.set_message(), TimerSet(timer=timer.public(time.time())))

    async def list_all(self, call: ToolCall, args: NoArgs) -> Outcome:
        now = time.time()
        timers = await self.mine(call.user)
        data = TimerList(timers=[t.public(now) for t in timers])
        if not timers:
            return Outcome(True, "You don't have any timers running.", data)
        parts = [f"{t.name} with {duration(max(0.0, t.due - now))} left" for t in timers[:5]]
        return Outcome(True, f"You have {count(len(timers), 'timer')}: {join(parts)}.", data)

    async def cancel(self, call: ToolCall, args: CancelTimerArgs) -> Outcome:
        timers = await self.mine(call.user)
        if not timers:
            if args.all:  # nothing to cancel is what was wanted
                return Outcome(True, "You don't have any timers running.", TimersCancelled(cancelled=[]))
            raise ToolError("You don't have any timers running.", "not_found")
        if args.id:
            chosen = [t for t in timers if t.id == args.id]
        elif args.label:
            chosen = _by_label(timers, args.label)
        else:
            chosen = timers
        now = time.time()
        if not chosen:
            raise ToolError("I couldn't find that timer.", "not_found", _dumped(timers, now))
        if len(chosen) > 1 and not args.all:
            names = join([t.name for t in chosen], "or")
            raise ToolError(f"You have {count(len(chosen), 'timer')}: which one, {names}?", "ambiguous",
                            _dumped(chosen, now))
        pipe = self.bus.redis.pipeline(transaction=True)
        for timer in chosen:
            pipe.delete(self.keys.timer(timer.id))
            pipe.zrem(self.keys.timers, timer.id)
            pipe.zrem(self.keys.user_timers(call.user), timer.id)
        answers = await pipe.execute()
        # Those already fired (or cancelled by another call) in the meantime were not in the set any more.
        cancelled = [t for t, removed in zip(chosen, answers[1::3], strict=True) if removed]
        data = TimersCancelled(cancelled=[t.public(now) for t in cancelled])
        if not cancelled:
            raise ToolError(f"Your {chosen[0].name} has already gone off." if len(chosen) == 1
                            else "Those timers have already gone off.", "gone")
        if len(cancelled) == 1:
            return Outcome(True, f"I cancelled your {cancelled[0].name}.", data)
        return Outcome(True, f"I cancelled your {count(len(cancelled), 'timer')}.", data)

    async def mine(self, user: str) -> list[Timer]:
        """The user's timers, soonest first (ids whose hash vanished are cleaned up)."""
        key = self.keys.user_timers(user)
        ids = [_text(i) for i in await self.bus.redis.zrange(key, 0, -1)]
        if not ids:
            return []
        pipe = self.bus.redis.pipeline(transaction=False)
        for timer_id in ids:
            pipe.hgetall(self.keys.timer(timer_id))
        timers, gone = [], []
        for timer_id, fields in zip(ids, await pipe.execute(), strict=True):
            if fields:
                timers.append(Timer.from_hash(timer_id, fields))
            else:
                gone.append(timer_id)
        if gone:
            await self.bus.redis.zrem(key, *gone)
        return [t for t in timers if t.user == user]

    def tools(self) -> list[Tool]:
        return [
            bind("timer.set", self.set),
            bind("timer.list", self.list_all),
            bind("timer.cancel", self.cancel),
        ]

    # --- firing ------------------------------------------------------------
    async def run(self) -> None:
        """Fire due timers until cancelled."""
        backoff = Backoff()
        while True:
            try:
                now = time.time()
                claimed = await self._claim(keys=[self.keys.timers], args=[now, now + LEASE_S, 50])
                for raw in claimed:
                    await self.fire(_text(raw))
                backoff.reset()
            except REDIS_DOWN as exc:
                log.warning("timers: Redis unreachable (%s); retrying", exc)
                await backoff.wait()
                continue
            _reraise_lost_cancel()
            await asyncio.sleep(self.poll_s)

    async def fire(self, timer_id: str) -> None:
        fields = await self.bus.redis.hgetall(self.keys.timer(timer_id))
        if not fields:  # cancelled between claim and now
            await self.bus.redis.zrem(self.keys.timers, timer_id)
            return
        try:
            timer = Timer.from_hash(timer_id, fields)
        except (KeyError, ValueError):
            log.error("dropping malformed timer %s", timer_id)
            await self.bus.redis.zrem(self.keys.timers, timer_id)
            return
        sessions = await self.announce(timer.user, timer.done_message())
        pipe = self.bus.redis.pipeline(transaction=True)
        pipe.delete(self.keys.timer(timer_id))
        pipe.zrem(self.keys.timers, timer_id)
        pipe.zrem(self.keys.user_timers(timer.user), timer_id)
        await pipe.execute()
        self.fired += 1
        log.info("timer %s done (%.1f s late) -> %d session(s)", timer_id, time.time() - timer.due, sessions)

    async def announce(self, user: str, message: str) -> int:
        """Say ``message`` on each open session of ``user``; keep it for later when none is open."""
        spoken = 0
        for sid in await self.sessions.user_sessions(user):
            record = await self.sessions.load(sid)
            if record is None or record.user != user:
                continue  # closed, or not this user's
            turn_id = new_id()
            await self.bus.emit(Notice(session_id=sid, turn_id=turn_id, code="timer", message=message).stamp("timer"))
            await self.bus.enqueue(
                self.keys.speak,
                SpeakRequest(
                    session_id=sid,
                    turn_id=turn_id,
                    seq=0,
                    final=True,
                    text=message,
                    voice=record.voice or None,
                    speech_rate=record.speech_rate,
                    sample_rate=record.output_sample_rate,
                ).stamp("first_chunk"),
            )
            spoken += 1
        if not spoken:
            await self.sessions.keep_notice(user, Notice(code="timer", message=message).stamp("timer"))
        return spoken


def _reraise_lost_cancel() -> None:
    # redis-py can swallow a cancel that lands mid-command (redis/redis-py#2028): the command
    # returns normally and the loop would run forever. The task still counts the request.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _by_label(timers: list[Timer], label: str) -> list[Timer]:
    wanted = _label(label).casefold()
    exact = [t for t in timers if t.label.casefold() == wanted or t.name.casefold() == f"{wanted} timer"]
    if exact:
        return exact
    return [t for t in timers if max(fuzz.ratio(wanted, t.label.casefold()), fuzz.ratio(wanted, t.name.casefold()))
            >= 75]


def _dumped(timers: list[Timer], now: float) -> list[dict[str, Any]]:
    return [t.public(now).model_dump() for t in timers]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


