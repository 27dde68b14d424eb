"""ASGI guards in front of every route: request size, Host and Origin allow-lists, security headers.

They run before FastAPI routing and authentication, so a refused request
costs nothing: a 16 MB body is refused from its ``Content-Length`` (or once
that many bytes arrived, for a chunked body) before anyone reads it, and a
request for a Host or from an Origin not allowed never reaches a handler.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Host names a local fleet is always reached by.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Paths of the API docs, which load their own inline scripts: no strict CSP there.
DOCS_PATHS = ("/docs", "/redoc")


def _hostname(host_header: str) -> str:
    """``example.org`` from ``example.org:8080``, ``::1`` from ``[::1]:8080``."""
    return (urlsplit(f"//{host_header}").hostname or "").lower()


class Guard:
    """One ASGI middleware for the checks every request gets before routing."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, hosts: Iterable[str], origins: Iterable[str],
        upload_paths: Mapping[str, int] | None = None,
    ) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        #: Paths that take files (audio uploads), with their own, larger limit.
        self.upload_paths = dict(upload_paths or {})
        self.hosts = {h.strip().lower() for h in hosts if h.strip()}
        self.any_host = "*" in self.hosts
        self.origins = {o.strip().rstrip("/").lower() for o in origins if o.strip()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not self.any_host and _hostname(host) not in self.hosts:
            await self._refuse(scope, send, 400, "bad_host", "This server does not answer for that host name.")
            return
        # A browser page of another origin must not reach the WebSocket or the MCP endpoint (MCP asks
        # servers to check Origin against DNS rebinding).
        if scope["type"] == "websocket" or scope.get("path") == "/mcp":
            origin = headers.get("origin")
            if origin is not None and not self._origin_allowed(origin, host):
                await self._refuse(scope, send, 403, "bad_origin", "Connections from that web origin are not allowed.")
                return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        limit = self.upload_paths.get(scope.get("path", ""), self.max_body_bytes)
        length = headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > limit):
            await self._refuse(scope, send, 413, "body_too_large", f"The request body is over the {limit}-byte limit.")
            return
        await self._serve_http(scope, receive, send, limit)

    def _origin_allowed(self, origin: str, host: str) -> bool:
        parts = urlsplit(origin)
        if parts.netloc.lower() == host.lower():
            return True  # the page this gateway served
        return origin.rstrip("/").lower() in self.origins or (parts.hostname or "") in LOCAL_HOSTS

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not refused:
                    # Answer now, and tell the app the client left: whatever it sends after is dropped.
                    refused = True
                    if not started:
                        await self._refuse(scope, send, 413, "body_too_large",
                                           f"The request body is over the {limit}-byte limit.")
                    return {"type": "http.disconnect"}
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *_security_headers(scope)]}
            await send(message)

        await self.app(scope, counted_receive, send_with_headers)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        if scope["type"] == "websocket":
            # Refused before the handshake completes: the client sees an HTTP 403.
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        body = json.dumps({"detail": {"code": code, "message": message}}).encode()
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                              (b"content-length", str(len(body)).encode()),
                                              (b"connection", b"close"), *_security_headers(scope)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    common = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    path: str = scope.get("path", "")
    if path.startswith(DOCS_PATHS):
        return [*common, (b"content-security-policy", b"frame-ancestors 'none'")]
    # The page loads only its own files: no inline script or style, no other origin.
    csp = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self' ws: wss:; "
           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    return [*common, (b"content-security-policy", csp.encode())]


def allowed_hosts(extra: str, bind_host: str, public_url: str) -> list[str]:
    """The Host names to answer for: local names, the bound address, the public URL's, and ``extra``."""
    hosts: list[str] = [*LOCAL_HOSTS, *(h for h in extra.split(",") if h.strip())]
    if bind_host not in ("0.0.0.0", "::", ""):
        hosts.append(bind_host)
    if public_url:
        hosts.append(urlsplit(public_url).hostname or "")
    return hosts


def allowed_origins(extra: str, public_url: str) -> list[str]:
    """Web origins (besides same-origin and localhost pages) allowed to open the WebSocket."""
    origins: list[str] = [o for o in extra.split(",") if o.strip()]
    if public_url:
        parts = urlsplit(public_url)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return origins
