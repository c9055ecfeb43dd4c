"""Running the app under uvicorn with a graceful stop: on SIGTERM/SIGINT the server stops accepting,
tells connected counters it is going (`{"comando": "encerrando"}`), lets their segments in flight
finish within SHUTDOWN_GRACE_S, and only then lets uvicorn close the connections and run the app's
shutdown (which flushes the interaction queue, stops the resources and the embedded PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import warnings
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

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        watch_children_with_pidfd()  # before the app starts any ffmpeg
        await super().serve(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while the open ones finish
        try:
            await self._drain()
        except Exception:
            log.exception("draining the counter connections failed; closing them now")
        await super().shutdown(sockets)


def watch_children_with_pidfd() -> bool:
    """Python 3.11's asyncio waits for each child process (an ffmpeg per WebM connection) on a thread
    of its own; a pidfd the event loop watches needs none. 3.12 and later do this by themselves, and
    uvloop watches its children itself (libuv's SIGCHLD handler)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return False
    if not isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel older than 5.3, or a sandbox that forbids it: keep the threads
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())  # call it from the loop that spawns them
        asyncio.set_child_watcher(watcher)
    return True


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
        # asyncio's own loop unless EVENT_LOOP=uvloop, even where uvloop is installed (uvicorn's "auto"
        # would take it): the loop the server runs on is a setting, not an accident of the environment.
        loop=settings.event_loop,
        ws="auto",
        # The app refuses frames over WS_MAX_FRAME_BYTES with 4413; the protocol cuts far bigger ones (1009)
        # before they are buffered whole.
        ws_max_size=limits.max_frame_bytes * 2 + 4096,
        # Audio frames are Opus or PCM, which deflate cannot shrink; per-message compression cost a
        # zlib state per connection (hundreds of kB) and CPU on every frame for nothing.
        ws_per_message_deflate=False,
        ws_ping_interval=limits.ping_interval_s or None,
        ws_ping_timeout=limits.ping_timeout_s,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(limits.shutdown_grace_s) + 5,
    )
    GracefulServer(config, drain).run()
