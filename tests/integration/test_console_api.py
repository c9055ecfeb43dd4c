"""The console's JSON endpoints and the two pages, on the real Litestar app with in-memory fakes:
the admin key, connected counters, recent interactions with their latencies, the OpenAPI schema."""

from __future__ import annotations

import json

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient

from balto.app import container as composition
from balto.app.settings import Settings
from balto.app.web import create_app
from balto.domain.interaction import IaStatus, Interaction, SttStatus, Suggestion
from balto.domain.speaker import SpeakerMatch, SpeakerScore
from tests.fakes import (
    EnergySpeechDetector,
    FakeClock,
    FakeTranscriber,
    InMemoryApiKeyRepository,
    InMemoryFeedbackRepository,
    InMemoryInteractionRepository,
    InMemorySpeakerProfileRepository,
)

ADMIN = "console-secret"
HEADERS = {"X-Admin-Key": ADMIN}
T0 = 1_700_000_000.0


def build(env: dict[str, str]):
    settings = Settings.from_env({"AUDIO_CLEANER": "off", "SPEAKER_ID": "off", **env})
    container = composition.build_container(settings)
    interactions, keys = InMemoryInteractionRepository(), InMemoryApiKeyRepository()
    container.database.override(providers.Object(None))
    container.interactions.override(providers.Object(interactions))
    container.api_keys.override(providers.Object(keys))
    container.feedback.override(providers.Object(InMemoryFeedbackRepository()))
    container.speaker_profiles.override(providers.Object(InMemorySpeakerProfileRepository()))
    container.transcriber.override(providers.Object(FakeTranscriber()))
    container.clock.override(providers.Object(FakeClock(T0)))
    container.speech_detector.override(providers.Factory(EnergySpeechDetector))
    return create_app(container=container), interactions, keys


@pytest.fixture
async def console():
    app, interactions, keys = build({"BALTO_ADMIN_KEY": ADMIN})
    async with AsyncTestClient(app) as client:
        client.interactions, client.keys = interactions, keys
        yield client


def cycle(balcao: str, offset: float, text: str, **extra) -> Interaction:
    base = T0 + offset
    return Interaction(
        balcao_id=balcao,
        conexao_id="c-" + balcao,
        transcricao=text,
        stt_status=SttStatus.OK,
        stt_provider="whisper",
        ts_audio_received=base,
        ts_segment_closed=base + 2.0,
        ts_trans_req=base + 2.01,
        ts_trans_resp=base + 2.41,
        ts_trans_sent=base + 2.412,
        **extra,
    )


async def test_endpoints_need_the_admin_key(console):
    for path in ("/console/api/balcoes", "/console/api/interacoes", "/console/api/latencias"):
        assert (await console.get(path)).status_code == 401
        assert (await console.get(path, headers={"X-Admin-Key": "wrong"})).status_code == 401
        assert (await console.get(path, headers=HEADERS)).status_code == 200


async def test_without_an_admin_key_the_api_is_off_but_the_pages_are_served():
    app, _, _ = build({})
    async with AsyncTestClient(app) as client:
        assert (await client.get("/console/api/balcoes", headers=HEADERS)).status_code == 404
        assert (await client.get("/console")).status_code == 200


async def test_recent_interactions_carry_transcript_speaker_cards_and_latencies(console):
    speaker = SpeakerMatch("7", 0.8, (SpeakerScore("7", "Ana", "atendente", 0.8, 0.97),))
    await console.interactions.add(
        cycle(
            "B1",
            0,
            "Bom dia, estou com dor de cabeça",
            speaker=speaker,
            playbook_suggestions=(Suggestion("Pergunte há quanto tempo dói", source="playbook", rule="dor"),),
            ts_playbook_sent=T0 + 2.42,
        )
    )
    llm = cycle(
        "B2",
        10,
        "Tem dipirona?",
        ia_status=IaStatus.OK,
        suggestions=(Suggestion("Ofereça a dipirona"),),
        ia_provider="grok",
        ts_ai_req=T0 + 12.43,
        ts_ai_resp=T0 + 13.43,
        ts_rec_sent=T0 + 13.44,
    )
    await console.interactions.add(llm)
    rows = (await console.get("/console/api/interacoes", headers=HEADERS)).json()
    assert [r["balcao_id"] for r in rows] == ["B2", "B1"]  # newest first
    b2, b1 = rows
    assert b1["transcricao"] == "Bom dia, estou com dor de cabeça"
    assert (b1["falante_papel"], b1["falante_nome"], b1["falante_prob"]) == ("atendente", "Ana", 0.97)
    assert b1["sugestoes_playbook"] == ["Pergunte há quanto tempo dói"] and b1["sugestoes_ia"] == []
    assert b1["ia_status"] == "nao_chamada" and b1["recomendacao_gerada"] is None
    assert b1["latencias_ms"]["transcricao"] == pytest.approx(400.0, abs=0.2)
    assert b1["latencias_ms"]["ate_playbook"] == pytest.approx(420.0, abs=0.2)
    assert b1["latencias_ms"]["ia"] is None
    assert b2["sugestoes_ia"] == ["Ofereça a dipirona"] and b2["recomendacao_gerada"] == "S: Ofereça a dipirona"
    assert (b2["ia_status"], b2["ia_provider"]) == ("ok", "grok")
    assert b2["latencias_ms"]["ia"] == pytest.approx(1000.0, abs=0.2)
    assert b2["quando"].startswith("2023-11-14T22:13:30")
    only = (await console.get("/console/api/interacoes?balcao_id=B1&limite=5", headers=HEADERS)).json()
    assert [r["uuid"] for r in only] == [b1["uuid"]]
    assert (await console.get("/console/api/interacoes?limite=0", headers=HEADERS)).status_code == 400


async def test_latencies_summarise_each_stage_and_the_end_to_end_distribution(console):
    for i in range(10):
        await console.interactions.add(cycle("B1", 10 * i, f"frase {i}"))
    body = (await console.get("/console/api/latencias", headers=HEADERS)).json()
    assert body["interacoes"] == 10
    stages = {s["etapa"]: s for s in body["etapas"]}
    assert list(stages) == ["fila", "transcricao", "envio_transcricao", "playbook", "ia", "envio_recomendacao"]
    assert stages["transcricao"]["n"] == 10 and stages["transcricao"]["p50_ms"] == pytest.approx(400.0, abs=0.2)
    assert stages["ia"]["n"] == 0 and stages["ia"]["p50_ms"] is None
    assert body["fala"]["p50_ms"] == pytest.approx(2000.0, abs=0.2)
    histograms = {h["etapa"]: h for h in body["histogramas"]}
    transcript = histograms["ate_transcricao"]
    assert sum(transcript["contagens"]) == 10 and len(transcript["limites_ms"]) == len(transcript["contagens"]) + 1
    assert histograms["ate_ia"]["contagens"] == []


async def test_connected_counters_are_listed_while_their_socket_is_open(console):
    _, key = await console.keys.create("B-LIVE")
    assert (await console.get("/console/api/balcoes", headers=HEADERS)).json() == []
    with await console.websocket_connect("/ws") as ws:
        handshake = {"api_key": key, "vad_settings": {"threshold_multiplier": 2.0}, "transcricao": True}
        ws.send_text(json.dumps(handshake))
        assert json.loads(ws.receive_text())["comando"] == "conectado"
        live = (await console.get("/console/api/balcoes", headers=HEADERS)).json()
        assert len(live) == 1
        assert live[0]["balcao_id"] == "B-LIVE" and live[0]["transcricao"] is True
        assert live[0]["vad_settings"]["threshold_multiplier"] == 2.0
        assert live[0]["conectado_em"].startswith("2023-11-14T22:13:20") and live[0]["interacoes"] == 0
        ws.send_text(json.dumps({"comando": "fim"}))
        assert json.loads(ws.receive_text())["comando"] == "encerrado"
    assert (await console.get("/console/api/balcoes", headers=HEADERS)).json() == []


async def test_pages_and_their_assets_are_served(console):
    counter = await console.get("/balcao")
    assert counter.status_code == 200 and counter.headers["content-type"].startswith("text/html")
    assert "/static/balcao.js" in counter.text and 'lang="pt-BR"' in counter.text
    page = await console.get("/console")
    assert page.status_code == 200 and "/static/console.js" in page.text
    for asset, kind in (("balcao.js", "javascript"), ("console.js", "javascript"), ("style.css", "css")):
        response = await console.get(f"/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"], asset
    assert (await console.get("/static/../web.py")).status_code == 404


async def test_the_console_endpoints_are_documented_in_the_openapi_schema(console):
    schema = (await console.get("/schema/openapi.json")).json()
    for path in ("/console/api/balcoes", "/console/api/interacoes", "/console/api/latencias"):
        operation = schema["paths"][path]["get"]
        assert operation["tags"] == ["console"] and operation["summary"] and operation["description"], path
        assert operation["security"] == [{"adminKey": []}]
    assert "/balcao" not in schema["paths"] and "/console" not in schema["paths"]
    params = {p["name"] for p in schema["paths"]["/console/api/interacoes"]["get"]["parameters"]}
    assert {"balcao_id", "limite"} <= params
