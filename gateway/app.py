"""The FastAPI application: WebSocket sessions, health, metrics, schemas, the page."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketDisconnect

from voicefleet import codec, metrics
from voicefleet.bus import REDIS_DOWN
from voicefleet.messages import Cancel, Start, json_schemas
from voicefleet.service import Service
from voicefleet.sessions import Sessions

from . import auth, guard, openai_routes, tts_routes
from .connection import POLICY, TRY_LATER, UNSUPPORTED, Closing, Connection, close_reason, close_with_error
from .mcp_server import AssistantMcp
from .settings import GatewaySettings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


class Fleet(Service):
    """The gateway process on the fleet: the bus, the open connections, health and cancels from the base.

    uvicorn owns the process, so the app's lifespan calls :meth:`Service.start`
    and :meth:`Service.shutdown` instead of :meth:`Service.run`.
    """

    name = "gateway"

    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__(settings)
        self.gateway = settings
        self.connections: dict[str, Connection] = {}
        #: Grace periods of sessions whose client went away. Cancelled at shutdown: the sessions are
        #: then left to expire, so that a client can still resume them through another gateway.
        self.lingering: set[asyncio.Task[None]] = set()

    def status(self) -> dict[str, Any]:
        return {"sessions": len(self.connections)}

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        return [self._watch_queues()] if self.gateway.queue_metrics_s else []

    async def _watch_queues(self) -> None:
        """Keep ``vf_queue_depth`` current: how much work waits for each worker kind (the scaling signal)."""
        while True:
            with contextlib.suppress(*REDIS_DOWN):
                for stream, group, lag, pending in await self.bus.queue_depths():
                    if lag is not None:
                        metrics.QUEUE_DEPTH.labels(stream, group, "lag").set(lag)
                    metrics.QUEUE_DEPTH.labels(stream, group, "pending").set(pending)
            await asyncio.sleep(self.gateway.queue_metrics_s)

    async def on_cancel(self, cancel: Cancel) -> None:
        """Each cancel reaches its connection: the client is told to flush."""
        conn = self.connections.get(cancel.session_id)
        if conn is not None:
            await conn.on_cancel(cancel.turn_id, cancel.reason)

    async def teardown(self) -> None:
        for task in self.lingering:
            task.cancel()
        await asyncio.gather(*self.lingering, return_exceptions=True)

    async def offered(self, field: str, service: str) -> list[str]:
        """What the live workers of ``service`` offer (voices, wake words), from their health."""
        with contextlib.suppress(*REDIS_DOWN):
            health = await self.bus.health()
            return sorted({v for status in health.get(service, []) for v in status.get(field, [])})
        return []

    async def voices(self) -> list[str]:
        return await self.offered("voices", "tts")



class TokenRequest(BaseModel):
    sub: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    ttl_s: int = Field(3600, gt=0, le=86400)


def create_app(settings: GatewaySettings) -> FastAPI:
    fleet = Fleet(settings)
    assistant_mcp = AssistantMcp(fleet.bus, settings) if settings.mcp_server else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Redis may be down now: the gateway still serves (health says so) and its loops retry.
        await fleet.start(wait_for_redis=False)
        log.info("gateway on http://%s:%d", settings.host, settings.port)
        try:
            async with assistant_mcp.running() if assistant_mcp else contextlib.nullcontext():
                yield
        finally:
            await fleet.shutdown()

    app = FastAPI(
        title="voicefleet gateway",
        version="0.1.0",
        description="Talk to the voice assistant over a JWT-authenticated WebSocket "
        "(`/v1/ws/audio`); see `/v1/schema` for the message schemas.",
        lifespan=lifespan,
    )
    app.add_middleware(
        guard.Guard,
        max_body_bytes=settings.max_body_bytes,
        hosts=guard.allowed_hosts(settings.allowed_hosts, settings.host, settings.public_url),
        origins=guard.allowed_origins(settings.allowed_origins, settings.public_url),
        upload_paths={"/v1/audio/transcriptions": settings.max_upload_bytes},
    )
    app.state.fleet = fleet
    app.state.bus = fleet.bus
    app.state.settings = settings

    if assistant_mcp is not None:
        # An ASGI endpoint (the SDK's transport), behind the same JWT; see gateway/mcp_server.py.
        app.router.add_route("/mcp", assistant_mcp, methods=["GET", "POST", "DELETE"], include_in_schema=False)

    @app.websocket("/v1/ws/audio")
    async def audio_socket(ws: WebSocket) -> None:
        await ws.accept()
        try:
            principal = auth.verify(auth.token_from(dict(ws.headers), dict(ws.query_params)), settings)
        except auth.AuthError as exc:
            metrics.REFUSED.labels("auth").inc()
            log.info("refused connection: %s", exc.reason)
            await ws.close(POLICY, reason=close_reason(exc.reason))
            return
        sessions = Sessions(fleet.bus)
        conn: Connection | None = None
        reserved = False
        try:
            conn = Connection(ws, fleet.bus, settings, principal.user, await fleet.voices(),
                              await fleet.offered("wake_words", "stt"), fleet.connections, fleet.lingering,
                              gateway_instance=fleet.instance)
            # The slot is taken now, before 'start', atomically: a socket held open counts, and
            # simultaneous handshakes cannot all pass.
            reserved = await sessions.reserve_slot(principal.user, conn.connection_id,
                                                   settings.max_connections_per_user)
            if not reserved:
                metrics.REFUSED.labels("too_many_connections").inc()
                raise Closing("too_many_connections",
                              f"You already have {settings.max_connections_per_user} open connections; "
                              "close one first.", TRY_LATER)
            first = await _first_message(ws, settings)
            metrics.CONNECTIONS.inc()
            metrics.ACCEPTED.inc()
            try:
                await conn.serve(first)
            finally:
                metrics.CONNECTIONS.dec()
        except Closing as exc:
            await close_with_error(ws, exc)
        except WebSocketDisconnect:
            pass
        except REDIS_DOWN:
            await close_with_error(ws, Closing("bus_unavailable",
                                      "The assistant's message bus is unreachable; try again shortly.", TRY_LATER))
        finally:
            if conn is not None and reserved:
                with contextlib.suppress(*REDIS_DOWN):
                    await sessions.release_slot(principal.user, conn.connection_id)

    bearer = HTTPBearer(auto_error=False, description="A JWT, as for the WebSocket")

    async def require_user(
        creds: HTTPAuthorizationCredentials | None = Depends(bearer),
        token: str | None = Query(None, description="The JWT, for clients that cannot set headers"),
    ) -> auth.Principal:
        try:
            return auth.verify(creds.credentials if creds else token, settings)
        except auth.AuthError as exc:
            raise HTTPException(401, exc.reason, headers={"WWW-Authenticate": "Bearer"}) from None

    async def user_id(principal: auth.Principal = Depends(require_user)) -> str:
        return principal.user

    tts_settings = tts_routes.TtsHttpSettings.from_gateway(settings)
    tts_slots = tts_settings.slots()  # /v1/tts and /v1/audio/speech share them
    app.include_router(
        tts_routes.make_router(tts_settings, dependencies=[Depends(require_user)], get_user=user_id, slots=tts_slots)
    )

    async def api_key_user(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        """The JWT as an OpenAI API key: refusals in OpenAI's error shape (the SDK's AuthenticationError)."""
        try:
            return auth.verify(creds.credentials if creds else None, settings).user
        except auth.AuthError as exc:
            raise openai_routes.OpenAIError(401, f"Invalid API key: {exc.reason}", "invalid_api_key") from None

    app.include_router(openai_routes.make_router(settings, api_key_user, tts_slots))

    @app.exception_handler(openai_routes.OpenAIError)
    async def openai_error(request: Request, exc: openai_routes.OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path not in openai_routes.PATHS:
            return await request_validation_exception_handler(request, exc)
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return openai_routes.OpenAIError(400, f"{param or 'request'}: {first.get('msg', 'invalid request')}",
                                         "invalid_value", param).response()

    def is_operator(request: Request) -> bool:
        """Whether the request carries the operator token (``Authorization: Bearer``)."""
        if settings.operator_token is None or not settings.operator_token.get_secret_value():
            return False
        given = request.headers.get("authorization", "")
        expected = f"Bearer {settings.operator_token.get_secret_value()}"
        return hmac.compare_digest(given.encode(), expected.encode())

    @app.get("/v1/health", summary="Which services are up, and how many processes of each")
    async def health(request: Request) -> JSONResponse:
        """Counts for anyone; hosts, PIDs and model paths only with the operator token."""
        try:
            live = await fleet.bus.health()
        except REDIS_DOWN:
            return JSONResponse({"status": "down", "redis": False, "services": {}}, status_code=503)
        detailed = is_operator(request)
        services: dict[str, Any] = {}
        for name in sorted(set(live) | set(settings.required) | {"gateway"}):
            procs = live.get(name, [])
            services[name] = {"processes": len(procs), "ready": sum(1 for p in procs if p.get("ready"))}
            if detailed:
                services[name]["instances"] = procs
        ready = all(services[name]["ready"] > 0 for name in settings.required)
        return JSONResponse({"status": "ok" if ready else "degraded", "redis": True, "ready": ready,
                             "services": services})

    @app.get("/metrics", summary="Prometheus metrics (operator token, when one is set)", response_class=Response)
    async def prometheus(request: Request) -> Response:
        if settings.operator_token is not None and not is_operator(request):
            raise HTTPException(401, "send the operator token", headers={"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/schema", summary="JSON Schemas of the WebSocket protocol")
    async def schema() -> dict[str, Any]:
        return json_schemas()

    @app.post("/v1/dev/token", summary="Development sign-in (off unless VF_GATEWAY_DEV_SIGNIN=true)")
    async def dev_token(body: TokenRequest) -> dict[str, str]:
        if not settings.dev_signin:
            raise HTTPException(403, "development sign-in is disabled on this server")
        return {"token": auth.mint(body.sub, body.ttl_s, settings)}

    @app.get("/v1/config", summary="What the page needs to know before sign-in")
    async def page_config(request: Request) -> dict[str, Any]:
        return {"dev_signin": settings.dev_signin, "max_frame_bytes": settings.max_frame_bytes,
                "voices": await fleet.voices()}

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False)
        async def page() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    return app


async def _first_message(ws: WebSocket, settings: GatewaySettings) -> Start:
    """The ``start`` message; a client that sends audio first gets the defaults."""
    try:
        message = await asyncio.wait_for(ws.receive(), timeout=settings.start_timeout_s)
    except TimeoutError:
        raise Closing("start_timeout", "No 'start' message arrived in time.", POLICY) from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is None:
        raise Closing("start_required", "The first message must be a JSON 'start' message "
                      '(for example {"type": "start", "sample_rate": 16000}).', UNSUPPORTED)
    try:
        msg = codec.decode_text(message["text"], (Start,), settings.max_json_depth)
    except codec.DecodeError as exc:
        raise Closing("bad_start", f"The 'start' message was not understood: {exc.reason}.", UNSUPPORTED) from None
    assert isinstance(msg, Start)
    return msg
