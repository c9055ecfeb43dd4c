"""ApiKeyRepository contract: the in-memory fake and PostgreSQL behave the same."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from balto.adapters.postgres import PostgresApiKeyRepository, create_engine
from balto.domain.keys import hash_key
from tests.fakes import InMemoryApiKeyRepository


@pytest.fixture(params=["memory", "postgres"])
async def repo(request, pg):
    if request.param == "memory":
        yield InMemoryApiKeyRepository()
    else:
        engine = create_engine(pg.url)
        yield PostgresApiKeyRepository(engine)
        await engine.dispose()


async def test_created_key_resolves_to_its_balcao(repo):
    key, plain = await repo.create("B1")
    assert plain.startswith("bk_") and len(plain) > 40
    assert plain.startswith(key.prefix)
    resolved = await repo.resolve(plain)
    assert resolved is not None and resolved.balcao_id == "B1" and resolved.id == key.id


async def test_unknown_and_near_miss_keys_do_not_resolve(repo):
    _, plain = await repo.create("B1")
    assert await repo.resolve("bk_unknown") is None
    assert await repo.resolve(plain[:-1]) is None
    assert await repo.resolve(plain + "x") is None
    assert await repo.resolve("") is None


async def test_revoked_key_is_refused(repo):
    key, plain = await repo.create("B2")
    assert await repo.revoke(key.id) is True
    assert await repo.resolve(plain) is None
    assert await repo.revoke(key.id) is False
    listed = {k.id: k for k in await repo.list()}
    assert listed[key.id].revoked


async def test_listing_never_shows_the_key(repo):
    _, plain = await repo.create("B3")
    for key in await repo.list():
        assert plain not in repr(key)


async def test_empty_balcao_is_refused(repo):
    with pytest.raises(ValueError):
        await repo.create("  ")


async def test_postgres_stores_only_the_hash(engine):
    repo = PostgresApiKeyRepository(engine)
    _, plain = await repo.create("B9")
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM api_keys WHERE balcao_id = 'B9'"))).mappings().all()
    (row,) = rows
    assert row["key_hash"] == hash_key(plain)
    assert plain not in [str(v) for v in row.values()]
