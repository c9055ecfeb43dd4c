"""Running the alembic migrations in `migrations/` against an engine, from the app or the CLI."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


def migrations_dir() -> Path:
    override = os.environ.get("BALTO_MIGRATIONS_DIR")
    if override:
        return Path(override)
    # src/balto/adapters/migrations.py -> repository root
    return Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(connection: Connection | None = None, pgvector: bool = True) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes["pgvector"] = pgvector
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head", pgvector: bool = True) -> None:
    """Migrate to `revision`. `pgvector=False` keeps speaker embeddings in `real[]` even where the
    extension exists (the schema of a server without it, for tests and for DBAs who refuse extensions)."""

    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection, pgvector), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    def run(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)
