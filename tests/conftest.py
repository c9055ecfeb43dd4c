from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import make_url

from balto.adapters import migrations
from balto.adapters.embedded_postgres import create_database_if_missing, drop_database
from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model
from balto.adapters.postgres import create_engine
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.postgres import TestDatabase, embeddings_are_vectors, test_database
from tests.support.stt_servers import AssemblyAIStub, ElevenLabsStub, OpenAIAudioStub, StubServer


@pytest.fixture(scope="session")
async def pg() -> TestDatabase:
    """A fresh, migrated database on a real PostgreSQL, for the whole test session."""
    async with test_database() as database:
        engine = create_engine(database.url)
        await migrations.upgrade(engine)
        await engine.dispose()
        yield database


@pytest.fixture(scope="session")
async def pgvector_url(pg: TestDatabase) -> str:
    """A migrated database whose speaker embeddings are pgvector `vector`s: `pg` itself when its server
    has the extension (the embedded one does), else a database on a fresh embedded server."""
    if await embeddings_are_vectors(pg.url):
        yield pg.url
        return
    async with test_database(embedded_only=True) as database:
        engine = create_engine(database.url)
        await migrations.upgrade(engine)
        await engine.dispose()
        assert await embeddings_are_vectors(database.url)
        yield database.url


@pytest.fixture(scope="session")
async def plain_url(pg: TestDatabase) -> str:
    """A migrated database whose speaker embeddings are `real[]`: `pg` itself when its server lacks
    pgvector (the system PostgreSQL may), else another database on it migrated without the extension."""
    if not await embeddings_are_vectors(pg.url):
        yield pg.url
        return
    name = f"{pg.name}_plain"
    await create_database_if_missing(pg.admin_url, name)
    url = make_url(pg.url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    await migrations.upgrade(engine, pgvector=False)
    await engine.dispose()
    try:
        yield url
    finally:
        await drop_database(pg.admin_url, name)


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


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """The test session's BALTO_MODEL_CACHE: where the packaged model is assembled."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def whisper_model(model_cache):
    """The packaged Whisper base, loaded once per test session."""
    return load_whisper_model("base", model_cache, "int8", cpu_threads=2)


@pytest.fixture(scope="session")
def whisper(whisper_model):
    executor = ThreadPoolExecutor(1)
    yield WhisperTranscriber(whisper_model, executor, language="pt")
    executor.shutdown()


_STT_STUBS: dict[str, type[StubServer]] = {
    "assemblyai": AssemblyAIStub,
    "elevenlabs": ElevenLabsStub,
    "openai": OpenAIAudioStub,
}


@pytest.fixture(scope="session")
def stt_servers():
    """One stub server per transcription vendor, on 127.0.0.1, for the whole session."""
    servers = {name: stub() for name, stub in _STT_STUBS.items()}
    for server in servers.values():
        server.__enter__()
    yield servers
    for server in servers.values():
        server.__exit__(None, None, None)


@pytest.fixture
def stt_server(stt_servers):
    """The vendor stubs, each reset to answer "Bom dia"; index by vendor name."""
    for server in stt_servers.values():
        server.reset()
    return stt_servers


@pytest.fixture(scope="session")
def resemblyzer_embedder():
    """Resemblyzer's encoder, loaded once for the whole test session (seconds to load)."""
    from balto.adapters.resemblyzer import load_resemblyzer

    return load_resemblyzer(threads=1)
