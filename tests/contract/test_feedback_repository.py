"""FeedbackRepository contract: the in-memory fake and PostgreSQL behave the same."""

from __future__ import annotations

import uuid

import pytest

from balto.adapters.postgres import PostgresFeedbackRepository, create_engine
from balto.domain.interaction import Feedback
from tests.fakes import InMemoryFeedbackRepository


@pytest.fixture(params=["memory", "postgres"])
async def repo(request, pg):
    if request.param == "memory":
        yield InMemoryFeedbackRepository()
    else:
        engine = create_engine(pg.url)
        yield PostgresFeedbackRepository(engine)
        await engine.dispose()


async def test_a_verdict_is_stored_with_its_id_and_time(repo):
    target = str(uuid.uuid4())
    verdict = Feedback(interacao_uuid=target, balcao_id="B1", util=True, origem="playbook", conexao_id="c1")
    verdict_id = await repo.add(verdict)
    assert verdict_id == verdict.id and verdict_id > 0 and verdict.created_at is not None
    (stored,) = await repo.list_for(target)
    assert (stored.interacao_uuid, stored.balcao_id, stored.util, stored.origem, stored.conexao_id) == (
        target,
        "B1",
        True,
        "playbook",
        "c1",
    )
    assert stored.id == verdict_id


async def test_every_verdict_is_kept_oldest_first(repo):
    target = str(uuid.uuid4())
    await repo.add(Feedback(interacao_uuid=target, balcao_id="B1", util=True))
    await repo.add(Feedback(interacao_uuid=target, balcao_id="B1", util=False, origem="llm"))
    await repo.add(Feedback(interacao_uuid=str(uuid.uuid4()), balcao_id="B1", util=True))
    assert [(f.util, f.origem) for f in await repo.list_for(target)] == [(True, None), (False, "llm")]


async def test_no_verdict_is_an_empty_list(repo):
    assert await repo.list_for(str(uuid.uuid4())) == []
