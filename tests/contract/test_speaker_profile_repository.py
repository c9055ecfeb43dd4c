"""SpeakerProfileRepository contract: the in-memory fake, PostgreSQL with pgvector (cosine search in the
database), PostgreSQL without it (real[] column, in-process cosine), and pgvector forced off, alike."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from balto.adapters.postgres import PostgresSpeakerProfileRepository, create_engine
from balto.domain.speaker import SpeakerProfile
from tests.fakes import InMemorySpeakerProfileRepository


@pytest.fixture(params=["memory", "postgres-pgvector", "postgres-real-array", "postgres-pgvector-forced-off"])
def backend(request) -> tuple[str, str | None]:
    # Synchronous, so the session's database fixtures are only set up for the backends that use them.
    if request.param == "memory":
        return request.param, None
    return request.param, request.getfixturevalue("plain_url" if "real-array" in request.param else "pgvector_url")


@pytest.fixture
async def repo(backend):
    kind, url = backend
    if url is None:
        yield InMemorySpeakerProfileRepository()
        return
    engine = create_engine(url)
    repository = PostgresSpeakerProfileRepository(engine, use_pgvector=False if "forced-off" in kind else None)
    assert await repository.uses_pgvector() is (kind == "postgres-pgvector")
    yield repository
    await engine.dispose()


@pytest.fixture
def embedder() -> str:
    # Each test its own embedder name: the databases are shared by the session.
    return f"test-{uuid.uuid4().hex[:8]}"


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def profile(name: str, embedding: np.ndarray, embedder: str, balcao: str | None = "B1", role="atendente"):
    return SpeakerProfile(name=name, role=role, embedding=embedding, balcao_id=balcao, embedder=embedder, samples=2)


async def test_added_profile_comes_back_with_id_timestamps_and_a_unit_embedding(repo, embedder):
    added = await repo.add(profile("Ana", vec(3, 4, 0), embedder))
    assert added.id is not None and added.created_at is not None and added.updated_at is not None
    assert np.allclose(added.embedding, [0.6, 0.8, 0.0], atol=1e-6)
    got = await repo.get(added.id)
    assert got is not None
    assert (got.name, got.role, got.balcao_id, got.embedder, got.samples) == ("Ana", "atendente", "B1", embedder, 2)
    assert np.allclose(got.embedding, added.embedding, atol=1e-6)
    assert await repo.get("999999") is None and await repo.get("not-an-id") is None


async def test_the_store_keeps_its_own_copy(repo, embedder):
    original = profile("Bia", vec(1, 0, 0), embedder)
    added = await repo.add(original)
    original.embedding[:] = 0
    added.embedding[:] = 0
    added.name = "changed"
    got = await repo.get(added.id)
    assert got.name == "Bia" and np.allclose(got.embedding, [1, 0, 0])


async def test_list_shows_a_balcaos_own_and_global_profiles_of_one_embedder(repo, embedder):
    own = await repo.add(profile("Ana", vec(1, 0, 0), embedder, "B1"))
    everywhere = await repo.add(profile("Gerente", vec(0, 1, 0), embedder, None, role="gerente"))
    other = await repo.add(profile("Caio", vec(0, 0, 1), embedder, "B2"))
    await repo.add(profile("Outro modelo", vec(1, 1, 1), embedder + "-x", "B1"))
    assert [p.id for p in await repo.list("B1", embedder)] == [own.id, everywhere.id]
    assert [p.id for p in await repo.list("B2", embedder)] == [everywhere.id, other.id]
    assert [p.id for p in await repo.list(None, embedder)] == [own.id, everywhere.id, other.id]
    every = [p.id for p in await repo.list()]
    assert {own.id, everywhere.id, other.id} <= set(every) and every == sorted(every, key=int)


async def test_search_ranks_every_usable_profile_by_cosine(repo, embedder):
    a = await repo.add(profile("Ana", vec(1, 0, 0), embedder, "B1"))
    b = await repo.add(profile("Bia", vec(0.6, 0.8, 0), embedder, None))
    c = await repo.add(profile("Caio", vec(0, 0.6, 0.8), embedder, "B1"))
    await repo.add(profile("Outro balcão", vec(1, 0, 0), embedder, "B2"))
    await repo.add(profile("Outro modelo", vec(1, 0, 0), embedder + "-x", "B1"))
    await repo.add(profile("Outro tamanho", vec(1, 0, 0, 0), embedder, "B1"))
    query = vec(0.8, 0.6, 0)
    ranked = await repo.search(query * 5, "B1", embedder)  # any length: it is normalised
    assert [p.id for p, _ in ranked] == [b.id, a.id, c.id]
    expected = {a.id: 0.8, b.id: 0.96, c.id: 0.36}
    for p, score in ranked:
        assert score == pytest.approx(expected[p.id], abs=1e-5)
        assert p.name in ("Ana", "Bia", "Caio") and p.embedding.shape == (3,)


async def test_search_with_nothing_enrolled_is_empty(repo, embedder):
    assert await repo.search(vec(1, 0, 0), "B1", embedder) == []


async def test_real_embeddings_round_trip_at_float32_precision(repo, embedder):
    rng = np.random.default_rng(1)
    e = rng.standard_normal(256).astype(np.float32)
    added = await repo.add(profile("Ana", e, embedder))
    ((found, score),) = await repo.search(e, "B1", embedder)
    assert found.id == added.id and score == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(found.embedding, e / np.linalg.norm(e), atol=1e-6)


async def test_delete(repo, embedder):
    added = await repo.add(profile("Ana", vec(1, 0, 0), embedder))
    assert await repo.delete(added.id) is True
    assert await repo.get(added.id) is None
    assert await repo.search(vec(1, 0, 0), "B1", embedder) == []
    assert await repo.delete(added.id) is False
    assert await repo.delete("nope") is False


async def test_a_profile_needs_a_name_and_an_embedder(repo, embedder):
    with pytest.raises(ValueError):
        await repo.add(profile("  ", vec(1, 0, 0), embedder))
    with pytest.raises(ValueError):
        await repo.add(profile("Ana", vec(1, 0, 0), ""))
    with pytest.raises(ValueError):
        await repo.add(profile("Ana", vec(0, 0, 0), embedder))


async def test_a_real_array_database_refuses_to_be_forced_onto_pgvector(plain_url):
    engine = create_engine(plain_url)
    try:
        with pytest.raises(RuntimeError, match="no pgvector"):
            await PostgresSpeakerProfileRepository(engine, use_pgvector=True).uses_pgvector()
    finally:
        await engine.dispose()
