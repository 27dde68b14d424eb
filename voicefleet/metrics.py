"""Prometheus metrics, defined once for the whole fleet.

The gateway serves them at ``GET /metrics``; a worker serves its own on
``metrics_port`` when that setting is non-zero.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

CONNECTIONS = Gauge("vf_ws_connections", "Open WebSocket connections")
ACCEPTED = Counter("vf_ws_accepted", "WebSocket connections accepted")
REFUSED = Counter("vf_ws_refused_total", "WebSocket connections refused", ["reason"])
FRAMES_IN = Counter("vf_audio_frames_in_total", "Audio frames received from clients")
FRAMES_OUT = Counter("vf_audio_frames_out_total", "Audio frames sent to clients")
EVENTS_OUT = Counter("vf_events_out_total", "JSON events sent to clients", ["type"])
TURNS = Counter("vf_turns_total", "Turns handled", ["service", "outcome"])
ERRORS = Counter("vf_errors_total", "Errors reported", ["service", "code"])
BAD_MESSAGES = Counter("vf_bad_messages_total", "Messages that could not be decoded", ["service"])
STAGE_LATENCY = Histogram(
    "vf_stage_latency_seconds",
    "Time from the end of the user's turn to each stage",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
QUEUE_DEPTH = Gauge(
    "vf_queue_depth",
    "Work in a stream for one consumer group: 'lag' not yet read by any worker, 'pending' read but not done",
    ["stream", "group", "state"],
)
WORK_SECONDS = Histogram(
    "vf_work_seconds",
    "Time a worker spent on one item",
    ["service", "kind"],
    buckets=_LATENCY_BUCKETS,
)


def serve(port: int) -> None:
    """Expose this process's metrics on ``port`` (no-op for 0)."""
    if port:
        start_http_server(port, addr="127.0.0.1")
