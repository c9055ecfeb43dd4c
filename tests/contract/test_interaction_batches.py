"""PostgreSQL's batch insert (the write queue's and the journal replay's): every field as `add` stores
it, and a uuid already stored is skipped, never duplicated."""

from __future__ import annotations

from balto.adapters.postgres import PostgresInteractionRepository
from balto.domain.interaction import Interaction
from tests.contract.test_interaction_repository import full_interaction


async def test_add_many_stores_every_field_and_skips_stored_uuids(engine):
    repo = PostgresInteractionRepository(engine)
    rows = [full_interaction("B-BATCH"), full_interaction("B-BATCH"), Interaction(balcao_id="B-BATCH", conexao_id="c")]
    await repo.add(rows[0])  # reached the database before a timeout; the replay sends it again
    await repo.add_many(rows)
    await repo.add_many(rows)
    stored = await repo.list_recent("B-BATCH", limit=10)
    assert sorted(r.uuid for r in stored) == sorted(r.uuid for r in rows)
    again = await repo.get(rows[1].uuid)
    assert again is not None
    again.id = rows[1].id = None
    assert again == rows[1]
