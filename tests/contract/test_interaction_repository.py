"""InteractionRepository contract: the in-memory fake and PostgreSQL behave the same."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from balto.adapters.postgres import PostgresInteractionRepository, create_engine
from balto.domain.interaction import IaStatus, Interaction, RecommendationResult, SttStatus, Suggestion, Transcript
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
        ts_audio_received=1_700_000_000.123456,
        ts_segment_closed=1_700_000_001.0,
        ts_trans_req=1_700_000_001.1,
        ts_trans_resp=1_700_000_001.9,
        ts_trans_sent=1_700_000_001.95,
    )
    row.record_transcript(Transcript("você tem dipirona", "pt", 0.8, provider="whisper", latency_ms=812.5))
    row.speaker = SpeakerMatch("p1", 0.8, (SpeakerScore("p1", "Ana", "atendente", 0.8, 0.93),))
    row.record_ai(
        RecommendationResult(
            IaStatus.OK, (Suggestion("Ofereça dipirona"), Suggestion("Pergunte a idade")), raw="{}", provider="grok"
        ),
        1_700_000_002.0,
        1_700_000_002.5,
    )
    row.ts_rec_sent = 1_700_000_002.6
    row.conversa_id = "6f1c2b8e-3f7a-4d7e-9a51-0c2d7f9b1e44"
    row.playbook_suggestions = (
        Suggestion("Pergunte há quanto tempo dói", source="playbook", rule="dor_de_cabeca"),
        Suggestion("Indique paracetamol", source="playbook", rule="dor_de_cabeca"),
        Suggestion("Ofereça aferir a pressão", source="playbook", rule="pressao"),
    )
    row.checklist = {"cpf_nota": True, "fidelidade": False}
    row.ts_playbook_sent = 1_700_000_001.97
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
        "recomendacao_gerada", "speaker_data", "ia_provider", "conversa_id", "playbook_suggestions", "checklist",
        "stt_status", "stt_error",
    ):  # fmt: skip
        assert getattr(stored, name) == getattr(row, name), name
    for name in ("ts_audio_received", "ts_trans_resp", "ts_ai_req", "ts_rec_sent", "ts_playbook_sent"):
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


async def test_a_failed_transcription_is_stored_with_its_status_and_reason(repo):
    failed = Interaction(balcao_id="B7", conexao_id="c")
    failed.record_stt_failure(
        "every transcription provider failed: elevenlabs: HTTP 503; whisper: no answer within 4 s"
    )
    silent = Interaction(balcao_id="B7", conexao_id="c")
    silent.record_transcript(Transcript("", provider="whisper", latency_ms=900.0))
    timer = Interaction(balcao_id="B7", conexao_id="c")  # no segment in this cycle
    for row in (failed, silent, timer):
        await repo.add(row)
    stored = await repo.get(failed.uuid)
    assert (stored.transcricao, stored.stt_status, stored.stt_provider) == ("", SttStatus.ERROR, None)
    assert "elevenlabs: HTTP 503" in stored.stt_error
    stored_silent = await repo.get(silent.uuid)
    assert (stored_silent.stt_status, stored_silent.stt_provider, stored_silent.stt_error) == (
        SttStatus.EMPTY,
        "whisper",
        None,
    )
    assert (await repo.get(timer.uuid)).stt_status is None


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


async def test_a_playbook_card_does_not_touch_the_llms_null(repo):
    """The playbook is not "the AI": a row with a playbook card and no LLM call stays NULL / nao_chamada."""
    row = Interaction(balcao_id="B7", conexao_id="c", transcricao="dor de cabeça")
    row.playbook_suggestions = (Suggestion("Pergunte há quanto tempo dói", source="playbook", rule="dor_de_cabeca"),)
    await repo.add(row)
    stored = await repo.get(row.uuid)
    assert stored.recomendacao_gerada is None and stored.ia_status is IaStatus.NOT_CALLED
    assert stored.playbook_suggestions == row.playbook_suggestions
    plain = Interaction(balcao_id="B7", conexao_id="c")
    await repo.add(plain)
    stored_plain = await repo.get(plain.uuid)
    assert stored_plain.playbook_suggestions == () and stored_plain.checklist is None


async def test_postgres_keeps_playbook_cards_in_aligned_arrays(engine):
    repo = PostgresInteractionRepository(engine)
    await repo.add(full_interaction("B8"))
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT recomendacao_gerada, playbook_sugestoes, playbook_regras, checklist "
                    "FROM interacoes WHERE balcao_id = 'B8'"
                )
            )
        ).one()
    assert row.recomendacao_gerada == "S: Ofereça dipirona | S: Pergunte a idade"
    assert row.playbook_regras == ["dor_de_cabeca", "dor_de_cabeca", "pressao"]
    assert row.playbook_sugestoes[2] == "Ofereça aferir a pressão"
    assert row.checklist == {"cpf_nota": True, "fidelidade": False}


async def test_postgres_stores_the_top_speaker_in_queryable_columns(engine):
    repo = PostgresInteractionRepository(engine)
    known = full_interaction("B7S")
    unknown = Interaction(balcao_id="B7S", conexao_id="c")
    unknown.speaker = SpeakerMatch(
        "desconhecido",
        0.685,
        (
            SpeakerScore("desconhecido", "cliente_1", "cliente", 0.685, 0.97),
            SpeakerScore("p1", "Ana", "atendente", 0.61, 0.03),
        ),
    )
    not_identified = Interaction(balcao_id="B7S", conexao_id="c")
    for row in (known, unknown, not_identified):
        await repo.add(row)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT speaker_top_id, speaker_score, speaker_data FROM interacoes "
                    "WHERE balcao_id = 'B7S' ORDER BY id"
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
