from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from balto.adapters import migrations
from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model
from balto.adapters.postgres import create_engine
from tests.support.openai_server import OpenAIServer
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
    openai_server.stub.reset()
    return openai_server.stub


@pytest.fixture(scope="session")
def whisper_model(tmp_path_factory):
    """The packaged Whisper base, loaded once per test session."""
    return load_whisper_model("base", tmp_path_factory.mktemp("models"), "int8", cpu_threads=2)


@pytest.fixture(scope="session")
def whisper(whisper_model):
    executor = ThreadPoolExecutor(1)
    yield WhisperTranscriber(whisper_model, executor, language="pt")
    executor.shutdown()
