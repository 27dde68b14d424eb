"""One trace per turn: the trace context in the envelope, spans from every service, and the dashboard.

The fleet test starts the gateway, the orchestrator, the tools worker and TTS
as processes writing their spans to one file (``VF_TRACE_FILE``), types one
command that runs a tool, and checks that the turn is one trace whose spans
link up. The gateway test checks what the gateway does with the context at its
two edges: a client never picks the trace, and never sees it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REDIS_URL, free_port
from fleet import eventually, mint_token, running_fleet
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from test_gateway import open_session, recv_until, serve_gateway

from audio_client.headless import HeadlessClient
from audio_client.protocol import StartOptions
from voicefleet import codec, metrics, tracing
from voicefleet.bus import Bus
from voicefleet.messages import AudioChunk, SpeakRequest, TextInput, TurnRequest, json_schemas, new_id
from voicefleet.settings import BusSettings

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "voicefleet.json"


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


async def wait_for_spans(path: Path, want: set[str], trace_id: str | None = None, timeout: float = 15) -> list[dict]:
    """The spans in ``path`` once every name in ``want`` is there (of ``trace_id``, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = [s for s in tracing.read_spans(path) if trace_id is None or s["trace_id"] == trace_id]
        if want <= {s["name"] for s in spans}:
            return spans
        if time.monotonic() > deadline:
            raise TimeoutError(f"spans {want - {s['name'] for s in spans}} not written; got {spans}")
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# The envelope field and the module, in one process
# ---------------------------------------------------------------------------------------------


def test_traceparent_round_trips_and_is_left_out_when_there_is_none() -> None:
    msg = TurnRequest(session_id="s", turn_id="t", text="hi", traceparent=traceparent("a" * 32, "b" * 16))
    assert codec.decode(codec.encode(msg)).traceparent == msg.traceparent
    assert "traceparent" not in json.loads(codec.encode_text(msg, trace=False))
    plain = TurnRequest(session_id="s", turn_id="t", text="hi")
    assert b"traceparent" not in codec.encode(plain)[codec.HEADER]  # the wire format without tracing is unchanged
    assert "traceparent" not in plain.header()
    assert "traceparent" not in json.dumps(json_schemas())  # not part of the WebSocket protocol


@pytest.mark.parametrize("bad", ["00-zz", "01-" + "a" * 32 + "-" + "b" * 16 + "-01",
                                 traceparent("a" * 32, "b" * 16) + "x" * 1000, traceparent("A" * 32, "b" * 16)])
def test_a_malformed_traceparent_is_refused(bad: str) -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode_text(json.dumps({"type": "text", "text": "hi", "traceparent": bad}))
    with pytest.raises(codec.DecodeError):
        codec.decode({codec.HEADER: json.dumps({"type": "turn_request", "text": "hi", "traceparent": bad}).encode()})


def test_off_by_default_and_nothing_is_stamped() -> None:
    assert not tracing.setup("test", BusSettings())
    msg = TextInput(text="hi")
    with tracing.span("stage", msg) as span:
        assert not span.is_recording()
        tracing.inject(msg)
    assert msg.traceparent is None


def test_spans_continue_the_trace_a_message_carries(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    assert tracing.setup("test", BusSettings(trace_file=str(path)))
    try:
        first = TurnRequest(session_id="s1", turn_id="t1", text="hi")
        with tracing.span("sender", first):
            tracing.inject(first)
        assert first.traceparent is not None
        second = SpeakRequest(session_id="s1", turn_id="t1", text="hello")
        received = codec.decode(codec.encode(first))
        with tracing.span("receiver", received):
            tracing.inject(second)
        tracing.record("later", second, time.time() - 0.01, time.time())
        with tracing.span("inner", start=time.time() - 1.0):  # a stage that began before its span
            pass
    finally:
        tracing.shutdown()
    spans = {s["name"]: s for s in tracing.read_spans(path)}
    assert spans["sender"]["parent_id"] is None
    assert spans["receiver"]["parent_id"] == spans["sender"]["span_id"]
    assert spans["later"]["parent_id"] == spans["receiver"]["span_id"]
    inner = spans.pop("inner")
    assert inner["end"] - inner["start"] >= 1.0 and inner["parent_id"] is None
    assert len({s["trace_id"] for s in spans.values()}) == 1
    assert all(s["attributes"][tracing.SESSION] == "s1" and s["attributes"][tracing.TURN] == "t1"
               for s in spans.values())
    assert spans["sender"]["service"] == "voicefleet-test"


def test_otlp_endpoint_follows_the_otel_convention() -> None:
    assert tracing.traces_url("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces"
    assert tracing.traces_url("http://tempo:4318/v1/traces") == "http://tempo:4318/v1/traces"


def test_the_standard_otel_variable_turns_export_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert BusSettings().trace_otlp_endpoint == "http://127.0.0.1:4318"
    monkeypatch.setenv("VF_TRACE_OTLP_ENDPOINT", "http://collector:4318")
    assert BusSettings().trace_otlp_endpoint == "http://collector:4318"


# ---------------------------------------------------------------------------------------------
# The gateway's two edges
# ---------------------------------------------------------------------------------------------


async def test_gateway_starts_the_trace_and_keeps_it_from_clients(
    fleet_env: dict[str, str], tmp_path: Path, bus: Bus
) -> None:
    path = tmp_path / "spans.jsonl"
    client_trace = "c" * 32
    with serve_gateway({**fleet_env, "VF_TRACE_FILE": str(path)}, tmp_path) as gateway:
        ws, sid = await open_session(gateway)
        async with ws:
            await ws.send(json.dumps({"type": "text", "text": "what time is it",
                                      "traceparent": traceparent(client_trace, "d" * 16)}))
            async with asyncio.timeout(5):
                turns: list[TurnRequest] = []
                while not turns:
                    turns = [e.message for e in await bus.read(bus.keys.turns, "0", block_ms=200)
                             if isinstance(e.message, TurnRequest) and e.message.session_id == sid]
            turn = turns[0]
            assert turn.traceparent is not None
            _, trace_id, parent_id, _ = turn.traceparent.split("-")
            assert trace_id != client_trace  # a client never picks the trace its turn joins

            # Reply audio as a TTS worker would send it, inside its own span.
            tts_span = new_id()
            await bus.emit(AudioChunk(session_id=sid, turn_id=turn.turn_id, last=True, final=True,
                                      audio=b"\0" * 640, traceparent=traceparent(trace_id, tts_span)))
            start = await recv_until(ws, "audio_start")
            end = await recv_until(ws, "audio_end")
            assert "traceparent" not in start and "traceparent" not in end  # nor does it see one

    spans = {s["name"]: s for s in await wait_for_spans(path, {"gateway.text_turn", "gateway.reply_audio"}, trace_id)}
    root = spans["gateway.text_turn"]
    assert root["span_id"] == parent_id and root["parent_id"] is None
    assert root["attributes"][tracing.SESSION] == sid and root["attributes"][tracing.TURN] == turn.turn_id
    assert spans["gateway.reply_audio"]["parent_id"] == tts_span


class OtlpReceiver:
    """The receiving end of OTLP/HTTP (what Jaeger, Tempo or a collector listen with on 4318): spans by name."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    receiver.spans += [s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


async def test_spans_go_over_otlp_to_the_standard_endpoint_and_queues_reach_metrics(
    fleet_env: dict[str, str], tmp_path: Path, bus: Bus
) -> None:
    await bus.ensure_group(bus.keys.turns, "llm")  # an orchestrator's group, with no orchestrator reading it
    with OtlpReceiver() as otlp:
        env = {**fleet_env, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with serve_gateway(env, tmp_path, VF_GATEWAY_QUEUE_METRICS_S="0.1") as gateway:
            ws, _ = await open_session(gateway)
            async with ws, httpx.AsyncClient() as http:
                await ws.send(json.dumps({"type": "text", "text": "what time is it"}))

                async def exported() -> bool:
                    return "gateway.text_turn" in {s.name for s in otlp.spans}

                async def queued() -> bool:
                    metrics_text.append((await http.get(f"{gateway.http}/metrics")).text)
                    return 'vf_queue_depth{group="llm",state="lag",stream="turns"} 1.0' in metrics_text[-1]

                metrics_text: list[str] = []
                await eventually(exported, within=10)
                await eventually(queued, within=10)
    text = metrics_text[-1]
    assert 'vf_queue_depth{group="llm",state="pending",stream="turns"} 0.0' in text


# ---------------------------------------------------------------------------------------------
# One typed turn through the fleet
# ---------------------------------------------------------------------------------------------

WORKERS = {"llm": "llm_orchestrator", "tools": "tools_worker", "tts": "tts_worker"}


@pytest.fixture(scope="module")
def traced_fleet(redis_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    path = tmp_path_factory.mktemp("traces") / "spans.jsonl"
    # A command is answered by the intent layer and a tool, never by the model: the orchestrator is given
    # an OpenAI-compatible backend that nothing serves, so that it starts at once and loads no model.
    env = dict(VF_TRACE_FILE=str(path), VF_TOOLS_DATA_DIR=str(tmp_path_factory.mktemp("tools-data")),
               VF_TOOLS_WEB_PROVIDER="off", VF_TOOLS_SEARCH_DIRS="", VF_LLM_INTENT_NEAREST="false",
               VF_LLM_BACKENDS="openai", VF_LLM_OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    with running_fleet(REDIS_URL, free_port(), f"vftest-{new_id()[:8]}", tmp_path_factory.mktemp("trace-logs"),
                       WORKERS, **env) as fleet:
        yield fleet.ws, fleet.secret, path


@pytest.mark.fleet
@pytest.mark.models
async def test_one_typed_turn_is_one_trace(traced_fleet: tuple[str, str, Path]) -> None:
    ws, secret, path = traced_fleet
    async with HeadlessClient(ws, mint_token(secret, "ada"), StartOptions(wake_word="")) as client:
        result = await client.ask("Take a note: buy oat milk.", timeout_s=60)
    assert result.tools and result.tools[0]["name"] == "notes.add" and result.audio, result

    roots = [s for s in await wait_for_spans(path, {"gateway.text_turn"})
             if s["name"] == "gateway.text_turn" and s["attributes"].get(tracing.TURN) == result.turn_id]
    assert len(roots) == 1
    trace_id = roots[0]["trace_id"]
    want = {"gateway.text_turn", "llm.turn", "llm.intent", "llm.tool_call", "tools.execute", "tts.synthesize",
            "gateway.reply_audio"}
    spans = await wait_for_spans(path, want, trace_id)
    # Every span of this turn, from any service, is in this one trace...
    assert {s["trace_id"] for s in tracing.read_spans(path)
            if s["attributes"].get(tracing.TURN) == result.turn_id} == {trace_id}
    assert {s["service"] for s in spans} == {f"voicefleet-{n}" for n in ("gateway", "llm", "tools", "tts")}
    # ...carries the session and turn...
    for span in spans:
        assert span["attributes"][tracing.SESSION] == result.session_id, span
        assert span["attributes"][tracing.TURN] == result.turn_id, span
    # ...and hangs from a parent in the trace, up to the gateway's one root.
    by_id = {s["span_id"]: s for s in spans}
    assert [s["name"] for s in spans if s["parent_id"] is None] == ["gateway.text_turn"]
    parent = {s["name"]: by_id[s["parent_id"]]["name"] for s in spans if s["parent_id"] is not None}
    assert parent["llm.turn"] == "gateway.text_turn"
    assert parent["llm.intent"] == parent["llm.tool_call"] == parent["tts.synthesize"] == "llm.turn"
    assert parent["tools.execute"] == "llm.tool_call"
    assert parent["gateway.reply_audio"] == "tts.synthesize"
    named = {s["name"]: s for s in spans}
    assert named["llm.tool_call"]["attributes"]["tool"] == named["tools.execute"]["attributes"]["tool"] == "notes.add"
    assert named["llm.intent"]["attributes"]["tool"] == "notes.add"
    assert all(s["status"] != "ERROR" for s in spans)


# ---------------------------------------------------------------------------------------------
# The Grafana dashboard
# ---------------------------------------------------------------------------------------------


def defined_series() -> dict[str, set[str]]:
    """Every series name the code's metrics expose, with the labels each has."""
    series: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not hasattr(value, "_labelnames") or not hasattr(value, "_type"):
            continue
        name, labels = value._name, set(value._labelnames)
        suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}[value._type]
        for suffix in suffixes:
            series[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_dashboard_queries_only_metrics_the_code_defines() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    series = defined_series()
    queried: set[str] = set()
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            names = set(re.findall(r"\b(vf_[a-z0-9_]+)\b", expr))
            assert names, expr
            unknown = names - series.keys()
            assert not unknown, f"{panel['title']}: {unknown} is not defined in voicefleet/metrics.py"
            labels = set().union(*(series[n] for n in names))
            for group in re.findall(r"\bby \(([^)]*)\)", expr) + re.findall(r"\{([^}]*)\}", expr):
                used = {part.strip().split("=")[0].strip() for part in group.split(",") if part.strip()}
                assert used <= labels, f"{panel['title']}: labels {used - labels} not on {names}"
            queried |= names
    # What the dashboard is for: turns, stage latencies, errors and queue depth.
    assert {"vf_turns_total", "vf_stage_latency_seconds_bucket", "vf_errors_total", "vf_queue_depth"} <= queried
