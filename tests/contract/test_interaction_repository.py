"""InteractionRepository contract: the in-memory fake and PostgreSQL behave the same."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from balto.adapters.postgres import PostgresInteractionRepository, create_engine
from balto.domain.interaction import IaStatus, Interaction, RecommendationResult, Suggestion
from balto.domain.speaker import SpeakerMatch, SpeakerScore
from tests.fakes import InMemoryInteractionRepository


@pytest.fixture(params=["memory", "postgres"])
async def repo(request, pg):
    if request.param == "memory":
        yield InMemoryInteractionRepository()
    else:
        engine = create_engine(pg.url)
        yield PostgresInteractionRepository(engine)
        await engine.dispose()


def full_interaction(balcao: str = "B1") -> Interaction:
    row = Interaction(
        balcao_id=balcao,
        conexao_id="c1",
        transcricao="você tem dipirona",
        transcricao_completa="Cliente: bom dia\nCliente: você tem dipirona",
        segmento_inicio=1.25,
        segmento_fim=3.5,
        buffer_acao="disparar:acumulo",
        stt_provider="whisper",
        stt_latency_ms=812.5,
        ts_audio_received=1_700_000_000.123456,
        ts_segment_closed=1_700_000_001.0,
        ts_trans_req=1_700_000_001.1,
        ts_trans_resp=1_700_000_001.9,
        ts_trans_sent=1_700_000_001.95,
    )
    row.speaker = SpeakerMatch("p1", 0.8, (SpeakerScore("p1", "Ana", "atendente", 0.8, 0.93),))
    row.record_ai(
        RecommendationResult(IaStatus.OK, (Suggestion("Ofereça dipirona"), Suggestion("Pergunte a idade")), raw="{}"),
        1_700_000_002.0,
        1_700_000_002.5,
    )
    row.ts_rec_sent = 1_700_000_002.6
    return row


async def test_round_trip_keeps_every_field(repo):
    row = full_interaction()
    row_id = await repo.add(row)
    assert row_id == row.id and row_id > 0
    stored = await repo.get(row.uuid)
    assert stored is not None
    for name in (
        "balcao_id", "conexao_id", "transcricao", "transcricao_completa", "segmento_inicio", "segmento_fim",
        "buffer_acao", "ia_status", "suggestions", "grok_raw_response", "stt_provider", "stt_latency_ms",
        "recomendacao_gerada", "speaker_data",
    ):  # fmt: skip
        assert getattr(stored, name) == getattr(row, name), name
    for name in ("ts_audio_received", "ts_trans_resp", "ts_ai_req", "ts_rec_sent"):
        assert getattr(stored, name) == pytest.approx(getattr(row, name), abs=1e-6), name
    assert stored.ts_ai_resp is not None


async def test_the_three_states_of_recomendacao_gerada(repo):
    not_called = Interaction(balcao_id="B2", conexao_id="c")
    empty = Interaction(balcao_id="B2", conexao_id="c")
    empty.record_ai(RecommendationResult(IaStatus.OK, ()), 1.0, 2.0)
    failed = Interaction(balcao_id="B2", conexao_id="c")
    failed.record_ai(RecommendationResult(IaStatus.ERROR, error="HTTP 500"), 1.0, 2.0)
    for row in (not_called, empty, failed):
        await repo.add(row)
    assert (await repo.get(not_called.uuid)).recomendacao_gerada is None
    assert (await repo.get(empty.uuid)).recomendacao_gerada == "Nenhuma"
    stored_failed = await repo.get(failed.uuid)
    assert stored_failed.recomendacao_gerada is None
    assert stored_failed.ia_status is IaStatus.ERROR
    assert stored_failed.grok_raw_response == "HTTP 500"


async def test_adding_the_same_uuid_twice_stores_one_row(repo):
    row = Interaction(balcao_id="B3", conexao_id="c", transcricao="uma vez")
    first = await repo.add(row)
    second = await repo.add(row)
    assert first == second
    assert [r.uuid for r in await repo.list_recent("B3")] == [row.uuid]


async def test_list_recent_is_newest_first_and_filters_by_balcao(repo):
    rows = [Interaction(balcao_id="B4", conexao_id="c", transcricao=str(i)) for i in range(3)]
    other = Interaction(balcao_id="B5", conexao_id="c")
    for row in [*rows, other]:
        await repo.add(row)
    listed = await repo.list_recent("B4")
    assert [r.transcricao for r in listed] == ["2", "1", "0"]
    assert [r.transcricao for r in await repo.list_recent("B4", limit=2)] == ["2", "1"]
    assert other.uuid in [r.uuid for r in await repo.list_recent(None, limit=100)]


async def test_get_unknown_is_none(repo):
    assert await repo.get("00000000-0000-0000-0000-000000000000") is None


async def test_postgres_stores_null_and_nenhuma_literally(engine):
    repo = PostgresInteractionRepository(engine)
    not_called = Interaction(balcao_id="B6", conexao_id="c")
    empty = Interaction(balcao_id="B6", conexao_id="c")
    empty.record_ai(RecommendationResult(IaStatus.OK, ()), 1.0, 2.0)
    await repo.add(not_called)
    await repo.add(empty)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text("SELECT recomendacao_gerada, ia_status FROM interacoes WHERE balcao_id = 'B6' ORDER BY id")
            )
        ).all()
    assert rows == [(None, "nao_chamada"), ("Nenhuma", "vazia")]


async def test_postgres_stores_the_top_speaker_in_queryable_columns(engine):
    repo = PostgresInteractionRepository(engine)
    known = full_interaction("B7")
    unknown = Interaction(balcao_id="B7", conexao_id="c")
    unknown.speaker = SpeakerMatch(
        "desconhecido",
        0.685,
        (
            SpeakerScore("desconhecido", "cliente_1", "cliente", 0.685, 0.97),
            SpeakerScore("p1", "Ana", "atendente", 0.61, 0.03),
        ),
    )
    not_identified = Interaction(balcao_id="B7", conexao_id="c")
    for row in (known, unknown, not_identified):
        await repo.add(row)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT speaker_top_id, speaker_score, speaker_data FROM interacoes "
                    "WHERE balcao_id = 'B7' ORDER BY id"
                )
            )
        ).all()
    assert [(r[0], r[1]) for r in rows] == [
        ("p1", pytest.approx(0.8)),
        ("desconhecido", pytest.approx(0.685)),
        (None, None),
    ]
    assert rows[1][2].startswith('[{"id": "desconhecido", "nome": "cliente_1", "papel": "cliente"')
    assert rows[2][2] is None
