"""``python -m gateway``: serve the gateway, mint a token, or print the protocol schemas."""

from __future__ import annotations

import argparse
import json
import sys

from voicefleet import tracing
from voicefleet.constraints import exit_on_conflict
from voicefleet.logs import setup_logging

from .settings import GatewaySettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="The voicefleet gateway: WebSocket sessions, health, metrics and the browser page. "
        "Settings come from VF_GATEWAY_* / VF_* environment variables and .env.",
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the gateway (the default)")
    serve.add_argument("--host", help="address to bind (default from VF_GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="port to bind (default from VF_GATEWAY_PORT)")
    token = sub.add_parser("token", help="mint a JWT for a user and print it as the last line")
    token.add_argument("--sub", required=True, help="the user (JWT subject)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    sub.add_parser("schema", help="print the WebSocket protocol's JSON Schemas")
    args = parser.parse_args(argv)

    settings = GatewaySettings()
    if args.command == "token":
        from . import auth

        try:
            print(auth.mint(args.sub, args.ttl, settings))
        except auth.AuthError as exc:
            print(f"error: {exc.reason}", file=sys.stderr)
            return 2
        return 0
    if args.command == "schema":
        from voicefleet.messages import json_schemas

        print(json.dumps(json_schemas(), indent=2))
        return 0

    import uvicorn

    from .app import create_app

    if getattr(args, "host", None):
        settings.host = args.host
    if getattr(args, "port", None):
        settings.port = args.port
    setup_logging("gateway", settings.bus.log_level, settings.bus.log_json)
    if settings.jwt_algorithm.startswith("HS") and settings.jwt_secret is None:
        print("error: no JWT secret configured: set VF_GATEWAY_JWT_SECRET (./run.sh makes one in .env)",
              file=sys.stderr)
        return 2
    exit_on_conflict(settings)
    tracing.setup("gateway", settings.bus)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        # Frames up to 1 MiB reach our own size check, which answers with an error event;
        # larger ones are cut off by uvicorn itself (close code 1009).
        ws_max_size=max(settings.max_frame_bytes * 4, 1 << 20),
        ws_ping_interval=20,
        ws_ping_timeout=20,
        # SIGTERM: WebSockets are closed with 1012 at once (clients resume on another gateway); the
        # rest of the shutdown gets VF_DRAIN_S.
        timeout_graceful_shutdown=settings.bus.drain_s,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
