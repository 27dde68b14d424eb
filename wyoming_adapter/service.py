"""The adapter process: three Wyoming servers on the fleet's bus, with the fleet's health key and shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from functools import partial
from typing import Any

from wyoming.server import AsyncServer

from voicefleet.service import Service

from .handler import FleetHandler
from .info import Kind
from .settings import WyomingSettings

log = logging.getLogger(__name__)


class WyomingService(Service):
    """Serves ``asr``, ``tts`` and ``wake`` (each on its own URI) and routes every request to the fleet."""

    name = "wyoming"

    def __init__(self, settings: WyomingSettings) -> None:
        super().__init__(settings)
        self.wyoming = settings
        self.servers: dict[Kind, AsyncServer] = {}

    def uris(self) -> dict[Kind, str]:
        s = self.wyoming
        wanted: dict[Kind, str] = {"asr": s.asr_uri, "tts": s.tts_uri, "wake": s.wake_uri}
        return {kind: uri for kind, uri in wanted.items() if uri}

    async def setup(self) -> None:
        for kind, uri in self.uris().items():
            server = AsyncServer.from_uri(uri)
            await server.start(partial(FleetHandler, kind=kind, bus=self.bus, settings=self.wyoming,
                                       instance=self.instance))
            self.servers[kind] = server
            log.info("wyoming %s server on %s", kind, uri)

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        return [self._serve()]

    async def _serve(self) -> None:
        await asyncio.Event().wait()  # the servers run on their own; this loop only marks the service alive

    def status(self) -> dict[str, Any]:
        return {"servers": self.uris()}

    async def teardown(self) -> None:
        for server in self.servers.values():
            await server.stop()
