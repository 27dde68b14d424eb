"""Every Redis key and channel the fleet uses, in one place.

No other module spells a key. Each name carries its delivery guarantee:

* **work streams** (``turns``, ``speak``, ``tools``, ``transcribe``): Redis Streams read through
  consumer groups. An entry is acked only when handled; entries held by a
  consumer whose health key has expired are claimed by a live one. Nothing is
  lost when a worker dies.
* **session streams** (``audio``, ``out``): capped Streams, one per session.
  Ordered, readable by whichever process owns the session right now, and
  trimmed so that a forgotten session cannot fill memory. Real-time traffic:
  old entries may be trimmed away, which is fine for audio.
* **pub/sub** (``cancel``, ``sessions_new``): broadcasts that matter only to
  whoever listens right now. Every cancel is also written to a ``cancelled``
  key with a TTL, so a worker that picks up work later still sees it.
* **plain keys with a TTL** (health, leases, tool results): state that must
  vanish by itself when its writer dies.

Tests give every run its own ``prefix`` so they never touch a real fleet.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "vf"


@dataclass(frozen=True)
class Keys:
    """Key and channel names under one prefix."""

    prefix: str = DEFAULT_PREFIX

    # --- work streams (consumer groups, acked, reclaimed from dead consumers) ---
    @property
    def turns(self) -> str:
        """Stream of ``turn_request``: a transcript or typed text to answer."""
        return f"{self.prefix}:turns"

    @property
    def speak(self) -> str:
        """Stream of ``speak_request``: one sentence to synthesize."""
        return f"{self.prefix}:speak"

    @property
    def tools(self) -> str:
        """Stream of ``tool_call``: one tool invocation."""
        return f"{self.prefix}:tools"

    @property
    def transcribe(self) -> str:
        """Stream of ``transcribe_request``: a whole recording to transcribe (HTTP, Wyoming); group ``stt``."""
        return f"{self.prefix}:transcribe"

    # --- per-session capped streams (ordered, real time) ---
    def audio(self, session_id: str) -> str:
        """Client audio frames and in-band control (playback state, end) for one session."""
        return f"{self.prefix}:s:{session_id}:audio"

    def out(self, session_id: str) -> str:
        """Events and reply audio going back to the client of one session."""
        return f"{self.prefix}:s:{session_id}:out"

    def session_pattern(self, session_id: str) -> str:
        """SCAN pattern of every key of one session (all of them live under ``s:<id>:``)."""
        return f"{self.prefix}:s:{session_id}:*"

    # --- per-session state ---
    def session(self, session_id: str) -> str:
        """Hash: the :class:`~voicefleet.sessions.SessionRecord` (expires after the session).

        Written and read through :mod:`voicefleet.sessions` only; the STT owner
        adds its private fields ``stt_worker`` and ``stt_pos``.
        """
        return f"{self.prefix}:s:{session_id}:info"

    def history(self, session_id: str) -> str:
        """List of the conversation's messages as JSON (expires after the session)."""
        return f"{self.prefix}:s:{session_id}:history"

    def owner(self, session_id: str, role: str) -> str:
        """Lease (SET NX PX) naming the worker process that owns a session for ``role`` (``stt``)."""
        return f"{self.prefix}:s:{session_id}:owner:{role}"

    def cancelled(self, session_id: str, turn_id: str) -> str:
        """Marker with a TTL: this turn was cancelled (barge-in, stop)."""
        return f"{self.prefix}:s:{session_id}:cancelled:{turn_id}"

    def current_turn(self, session_id: str) -> str:
        """The turn id the session is answering now (to cancel on barge-in or when a new turn starts).

        Set only by :meth:`voicefleet.sessions.Sessions.start_turn`, which also applies the supersede rule.
        """
        return f"{self.prefix}:s:{session_id}:turn"

    def turn_progress(self, session_id: str, turn_id: str) -> str:
        """Hash with a TTL: how far the orchestrator got with a turn (chunks spoken, done).

        A worker that reclaims the turn after its first owner died reads it so
        that it does not speak the same sentences twice.
        """
        return f"{self.prefix}:s:{session_id}:progress:{turn_id}"

    @property
    def sessions(self) -> str:
        """Sorted set of open session ids, scored by the last time the gateway saw them."""
        return f"{self.prefix}:sessions"

    def user_sessions(self, user: str) -> str:
        """Sorted set of one user's open session ids (connection limit, timers)."""
        return f"{self.prefix}:u:{user}:sessions"

    def user_slots(self, user: str) -> str:
        """Sorted set of one user's connection slots (connection ids), scored by their last refresh.

        Reserved at the WebSocket handshake, before ``start``, so that the per-user
        connection limit holds for simultaneous handshakes and for idle sockets.
        """
        return f"{self.prefix}:u:{user}:slots"

    # --- pub/sub (best effort, for listeners present now) ---
    @property
    def cancel_channel(self) -> str:
        """Broadcast of ``cancel`` messages; also recorded under :meth:`cancelled`."""
        return f"{self.prefix}:cancel"

    @property
    def sessions_channel(self) -> str:
        """Broadcast: a session opened or closed; owners wake up at once instead of polling."""
        return f"{self.prefix}:sessions:changed"

    # --- request/reply ---
    def reply(self, request_id: str) -> str:
        """List the answer of one request is pushed to (BLPOP), with a TTL."""
        return f"{self.prefix}:reply:{request_id}"

    # --- health (TTL keys) ---
    def health(self, service: str, instance: str) -> str:
        """JSON status of one worker process; expires when the process stops refreshing it."""
        return f"{self.prefix}:health:{service}:{instance}"

    @property
    def replication_mark(self) -> str:
        """Scratch key written just before WAIT, so that WAIT covers every earlier write (expires in a minute)."""
        return f"{self.prefix}:replication-mark"

    @property
    def health_pattern(self) -> str:
        return f"{self.prefix}:health:*"

    # --- tools ---
    @property
    def timers(self) -> str:
        """Sorted set of timer ids scored by due time (epoch seconds)."""
        return f"{self.prefix}:timers"

    def timer(self, timer_id: str) -> str:
        """Hash describing one timer."""
        return f"{self.prefix}:timer:{timer_id}"

    def user_timers(self, user: str) -> str:
        """Sorted set of one user's timer ids scored by due time (list and cancel by voice)."""
        return f"{self.prefix}:u:{user}:timers"

    def pending_notices(self, user: str) -> str:
        """List of ``notice`` JSON headers for a user who had no open session (capped, with a TTL).

        The gateway pops and sends them when that user connects next.
        """
        return f"{self.prefix}:u:{user}:notices"

    @property
    def remote_tools(self) -> str:
        """Hash: MCP server name -> JSON listing of its tools (:mod:`voicefleet.remote_tools`).

        Written by the tools worker that connected to the server (again on every
        ``tools/list_changed``), read by the orchestrator. No TTL: a listing stays
        while the server is configured; its ``up`` field says whether it answers now.
        """
        return f"{self.prefix}:remote_tools"

    def all_keys_pattern(self) -> str:
        """Every key under this prefix (tests clean up with it)."""
        return f"{self.prefix}:*"
