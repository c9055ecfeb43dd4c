"""Running the app under uvicorn with a graceful stop: on SIGTERM/SIGINT the server stops accepting,
tells connected counters it is going (`{"comando": "encerrando"}`), lets their segments in flight
finish within SHUTDOWN_GRACE_S, and only then lets uvicorn close the connections and run the app's
shutdown (which flushes the interaction queue, stops the resources and the embedded PostgreSQL)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from litestar import Litestar

from balto.app.settings import Settings

log = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self._drain = drain

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while the open ones finish
        try:
            await self._drain()
        except Exception:
            log.exception("draining the counter connections failed; closing them now")
        await super().shutdown(sockets)


def run(app: Litestar, settings: Settings, host: str, port: int) -> None:
    limits = settings.limits

    async def drain() -> None:
        hub: Any = getattr(app.state, "hub", None)
        if hub is not None:
            await hub.drain(limits.shutdown_grace_s)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="auto",
        # The app refuses frames over WS_MAX_FRAME_BYTES with 4413; the protocol cuts far bigger ones (1009)
        # before they are buffered whole.
        ws_max_size=limits.max_frame_bytes * 2 + 4096,
        ws_ping_interval=limits.ping_interval_s or None,
        ws_ping_timeout=limits.ping_timeout_s,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(limits.shutdown_grace_s) + 5,
    )
    GracefulServer(config, drain).run()
