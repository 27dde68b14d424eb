"""One trace per turn: an OpenTelemetry span for every stage, the context carried in the envelope.

A service calls :func:`setup` once (from ``__main__``); tracing is on when
an OTLP endpoint or a trace file is configured (:class:`BusSettings`), and off
otherwise: then :func:`span` hands back one shared no-op context manager and
:func:`inject` returns at once, so a message costs one ``if``.

Across processes the context travels in :attr:`Message.traceparent` (W3C
trace context, version 00): :meth:`Bus.add` and :meth:`Bus.reply` stamp it
on every message sent inside a span, and a handler opens its span with
``span(name, msg)``, which continues the message's trace. ``tracestate`` and
baggage are not carried: the field stays one fixed-size string.

Spans are exported from a background thread (the SDK's batch processor), never
on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .messages import Message

if TYPE_CHECKING:
    from .settings import BusSettings

log = logging.getLogger(__name__)

#: Span attributes every stage sets (from the message it handles).
SESSION = "voicefleet.session_id"
TURN = "voicefleet.turn_id"

_PROPAGATOR = TraceContextTextMapPropagator()
_NOOP: AbstractContextManager[Span] = contextlib.nullcontext(INVALID_SPAN)
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def setup(service: str, settings: BusSettings) -> bool:
    """Start tracing for this process if an exporter is configured; True when it is on."""
    global _tracer, _provider
    shutdown()
    if not (settings.trace_otlp_endpoint or settings.trace_file):
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"voicefleet-{service}", "service.namespace": "voicefleet"}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    if settings.trace_otlp_endpoint:
        # Imported only when used: it brings protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = traces_url(settings.trace_otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        log.info("tracing: OTLP/HTTP to %s", url)
    if settings.trace_file:
        # A short delay: whoever reads the file (a test) sees a turn's spans within half a second.
        provider.add_span_processor(BatchSpanProcessor(JsonLinesExporter(settings.trace_file),
                                                       schedule_delay_millis=200))
        log.info("tracing: spans to %s", settings.trace_file)
    _provider, _tracer = provider, provider.get_tracer("voicefleet")
    return True


async def flush(timeout_s: float = 5.0) -> None:
    """Export what is buffered, off the event loop: a service calls it as it stops (uvicorn ends the gateway
    by raising the signal it caught again, and a process ended by a signal skips the SDK's exit handler)."""
    if _provider is not None:
        await asyncio.to_thread(_provider.force_flush, round(timeout_s * 1000))


def shutdown() -> None:
    """Export what is buffered and stop (also done at interpreter exit by the SDK)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint, as the OTel spec builds it from OTEL_EXPORTER_OTLP_ENDPOINT."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1e9)


def span(
    name: str,
    msg: Message | None = None,
    start: float | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    **attributes: str | int | float | bool,
) -> AbstractContextManager[Span]:
    """A span for one stage, current inside the ``with``; exceptions raised in it are recorded.

    With ``msg``: it carries the message's session and turn ids, and continues
    the message's trace when the message has a ``traceparent`` (otherwise the
    current span, if any, is the parent). Without: the current span's session
    and turn ids. ``start``: when the stage began (epoch seconds), for a stage
    that began before its span could be opened.
    """
    if _tracer is None:
        return _NOOP
    context = None
    if msg is not None:
        attributes[SESSION] = msg.session_id
        attributes[TURN] = msg.turn_id
        if msg.traceparent:
            context = _PROPAGATOR.extract({"traceparent": msg.traceparent})
    else:  # a stage inside another: the same session and turn
        outer = getattr(trace.get_current_span(), "attributes", None) or {}
        for key in (SESSION, TURN):
            if key in outer:
                attributes.setdefault(key, outer[key])
    return _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes,
                                         start_time=_ns(start))


def record(
    name: str, msg: Message, start: float, end: float, parent: str | None = None, **attributes: str | int | float | bool
) -> None:
    """A finished span for a stage timed by other means (epoch seconds), under ``parent`` (a traceparent)
    or the message's own trace."""
    if _tracer is None:
        return
    attributes[SESSION], attributes[TURN] = msg.session_id, msg.turn_id
    carrier = parent or msg.traceparent
    context = _PROPAGATOR.extract({"traceparent": carrier}) if carrier else None
    started = _tracer.start_span(name, context=context, attributes=attributes, start_time=_ns(start))
    started.end(end_time=_ns(end))


def inject(msg: Message) -> None:
    """Stamp the current span's context on ``msg`` (kept if it has one already; nothing when tracing is off)."""
    if _tracer is None or msg.traceparent is not None:
        return
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        msg.traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def set_attributes(**attributes: str | int | float | bool) -> None:
    """Add attributes to the current span (no-op when tracing is off or no span is current)."""
    if _tracer is not None:
        trace.get_current_span().set_attributes(attributes)


# --------------------------------------------------------------------------------------------
# A file exporter: one JSON object per span and line, appended (several processes may share a file).
# --------------------------------------------------------------------------------------------


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """The JSON-lines form of a finished span."""
    context = span.get_span_context()
    parent = span.parent
    assert context is not None
    return {
        "name": span.name,
        "service": span.resource.attributes.get("service.name", ""),
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "start": (span.start_time or 0) / 1e9,
        "end": (span.end_time or 0) / 1e9,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


def read_spans(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every span in a trace file (lines cut short by a writer that is still writing are skipped)."""
    spans = []
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as file:
        for line in file:
            with contextlib.suppress(json.JSONDecodeError):
                spans.append(json.loads(line))
    return spans


class JsonLinesExporter(SpanExporter):
    """Appends spans to a file, one JSON line each, in one ``write`` per line (O_APPEND: lines never mix)."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for item in spans:
                os.write(self._fd, (json.dumps(span_record(item), default=str) + "\n").encode())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            os.close(self._fd)
