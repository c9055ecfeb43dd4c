"""Every alembic revision goes up and down cleanly (the stairway test)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from balto.adapters import migrations
from balto.adapters.embedded_postgres import create_database_if_missing, drop_database
from balto.adapters.postgres import create_engine


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names())) - {"alembic_version"}


async def embedding_type(engine) -> str:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'speaker_profiles'::regclass AND attname = 'embedding'"
                )
            )
        ).scalar_one()


async def pgvector_available(engine) -> bool:
    async with engine.connect() as conn:
        query = sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return bool((await conn.execute(query)).scalar())


@pytest.mark.parametrize("pgvector", [True, False], ids=["pgvector-if-available", "without-pgvector"])
async def test_stairway_up_and_down_each_revision(pg, pgvector):
    name = f"balto_stairway_{uuid.uuid4().hex[:8]}"
    await create_database_if_missing(pg.admin_url, name)
    engine = create_engine(make_url(pg.url).set(database=name).render_as_string(hide_password=False))
    try:
        previous = "base"
        for revision in revisions():
            await migrations.upgrade(engine, revision, pgvector=pgvector)
            await migrations.downgrade(engine, previous)
            await migrations.upgrade(engine, revision, pgvector=pgvector)
            previous = revision
        assert {"interacoes", "api_keys", "speaker_profiles"} <= await tables(engine)
        # The embedding is a vector where the extension exists (and is wanted), else a real[].
        expected = "vector" if pgvector and await pgvector_available(engine) else "real[]"
        assert await embedding_type(engine) == expected
        await migrations.downgrade(engine, "base")
        assert await tables(engine) == set()
    finally:
        await engine.dispose()
        await drop_database(pg.admin_url, name)
