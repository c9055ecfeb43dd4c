from __future__ import annotations

import pytest

from balto.adapters import migrations
from balto.adapters.postgres import create_engine
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.postgres import TestDatabase, test_database


@pytest.fixture(scope="session")
async def pg() -> TestDatabase:
    """A fresh, migrated database on a real PostgreSQL, for the whole test session."""
    async with test_database() as database:
        engine = create_engine(database.url)
        await migrations.upgrade(engine)
        await engine.dispose()
        yield database


@pytest.fixture
async def engine(pg: TestDatabase):
    engine = create_engine(pg.url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def openai_server():
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_stub(openai_server):
    # Back to the standard answer, whatever default an earlier test left behind.
    openai_server.stub.reset(Reply.suggestions("Ofereça um analgésico"))
    return openai_server.stub


@pytest.fixture(scope="session")
def openai_server_b():
    """A second provider, for the fallback tests."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_stub_b(openai_server_b):
    openai_server_b.stub.reset(Reply.suggestions("Ofereça um analgésico"))
    return openai_server_b.stub
