"""End to end: a counter streams a committed Portuguese fixture through /ws to the real server."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import numpy as np
import pytest
import sqlalchemy as sa
import websockets

from balto.app.replay import read_wav_16k_mono, replay
from balto.evaluation import wer
from tests.support.audio import FIXTURES, fixture_manifest
from tests.support.openai_server import Reply
from tests.support.postgres import stored_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A cycle's stamps in the order they happen. The transcription may start before the VAD closes the
# segment (VAD_EARLY_START_MS), so ts_segment_closed is only known to come before the frame is sent.
TS_ORDER = (
    "ts_audio_received",
    "ts_trans_req",
    "ts_trans_resp",
    "ts_trans_sent",
    "ts_ai_req",
    "ts_ai_resp",
    "ts_rec_sent",
)


def by_command(messages: list[dict], command: str) -> list[dict]:
    return [m for m in messages if m.get("comando") == command]


def cards(messages: list[dict], origem: str) -> list[dict]:
    return [m for m in by_command(messages, "recomendar") if m["origem"] == origem]


async def test_fixture_streamed_gets_recomendar_and_every_cycle_is_stored(server, fresh_key, openai_stub, db):
    openai_stub.reset(Reply.suggestions("Ofereça um analgésico", "Pergunte se tem alergia"))
    messages = await replay(FIXTURES / "balcao_pt.wav", fresh_key, server.url, speed=0)

    balcao = messages[0]["balcao_id"]
    assert messages[0]["comando"] == "conectado" and balcao.startswith("B-E2E-")
    assert messages[-1]["comando"] == "encerrado"
    transcripts = by_command(messages, "transcricao")
    (card,) = cards(messages, "llm")
    assert card["sugestoes"] == ["Ofereça um analgésico", "Pergunte se tem alergia"]
    # The playbook answered first, on the first sentence's "dor de cabeça", before the buffer fired.
    (playbook_card,) = cards(messages, "playbook")
    assert messages.index(playbook_card) < messages.index(card)

    rows = await stored_rows(db, messages[0]["conexao_id"], messages)
    assert len(rows) == len(transcripts) == messages[-1]["interacoes"]
    said = fixture_manifest()["balcao_pt.wav"]["text"]
    heard = " ".join(r["transcricao"] for r in rows if r["transcricao"])
    assert wer(said, heard) <= 0.5, heard  # synthetic espeak voice; real speech is held to 0.30
    assert {(r["stt_provider"], r["stt_status"]) for r in rows} == {("whisper", "ok")}
    assert all(r["stt_latency_ms"] > 0 and r["stt_error"] is None for r in rows)
    fired = next(r for r in rows if str(r["uuid"]) == card["interacao_id"])
    assert fired["recomendacao_gerada"] == "S: Ofereça um analgésico | S: Pergunte se tem alergia"
    assert fired["ia_status"] == "ok"
    assert json.loads(fired["grok_raw_response"]) == {"sugestoes": ["Ofereça um analgésico", "Pergunte se tem alergia"]}
    stamps = [fired[name] for name in TS_ORDER]
    assert None not in stamps and stamps == sorted(stamps), stamps
    assert fired["ts_audio_received"] <= fired["ts_segment_closed"] <= fired["ts_trans_sent"]
    assert fired["balcao_id"] == balcao and fired["stt_provider"] == "whisper"
    # The LLM saw the conversation that the row says it saw, and was told what the playbook showed.
    prompt = openai_stub.requests[-1]["messages"][1]["content"]
    assert fired["transcricao_completa"] in prompt
    assert all(s in prompt.split("não repita):")[1] for s in playbook_card["sugestoes"])
    assert fired["ia_provider"] == "openai_compatible"


async def test_buffer_that_never_fires_leaves_recomendacao_null(server, openai_stub, db):
    openai_stub.reset()
    messages = await replay(FIXTURES / "bom_dia.wav", server.key, server.url, speed=0)
    assert by_command(messages, "recomendar") == []
    rows = await stored_rows(db, messages[0]["conexao_id"], messages)
    assert len(rows) == 1
    assert rows[0]["recomendacao_gerada"] is None and rows[0]["ia_status"] == "nao_chamada"
    assert rows[0]["ts_ai_req"] is None and rows[0]["ia_provider"] is None
    assert rows[0]["playbook_sugestoes"] is None and rows[0]["playbook_regras"] is None
    assert openai_stub.requests == []


async def test_llm_with_nothing_to_say_is_nenhuma(server, openai_stub, db):
    openai_stub.reset(Reply.suggestions())
    messages = await replay(FIXTURES / "balcao_pt.wav", server.key, server.url, speed=0)
    assert cards(messages, "llm") == []
    rows = await stored_rows(db, messages[0]["conexao_id"], messages)
    called = [r for r in rows if r["ts_ai_req"] is not None]
    assert len(called) == 1 and len(openai_stub.requests) == 1
    assert called[0]["recomendacao_gerada"] == "Nenhuma" and called[0]["ia_status"] == "vazia"
    assert all(r["recomendacao_gerada"] is None for r in rows if r["ts_ai_req"] is None)


async def test_llm_failure_is_null_with_error_status(server, openai_stub, db):
    openai_stub.reset(Reply(status=500, body='{"error": {"message": "upstream down"}}'))
    messages = await replay(FIXTURES / "balcao_pt.wav", server.key, server.url, speed=0)
    assert cards(messages, "llm") == []
    rows = await stored_rows(db, messages[0]["conexao_id"], messages)
    (called,) = [r for r in rows if r["ts_ai_req"] is not None]
    assert called["recomendacao_gerada"] is None and called["ia_status"] == "erro"
    assert "upstream down" in called["grok_raw_response"]


async def until(ws, seen: list[dict], wanted: Callable[[dict], bool]) -> dict:
    """Read frames (kept in `seen`) until one is `wanted`; a minute without it fails the test."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60.0))
        seen.append(message)
        if wanted(message):
            return message


async def test_playbook_card_checklist_and_feedback_through_ws(server, fresh_key, openai_stub, db):
    openai_stub.reset(Reply.suggestions("Ofereça um analgésico"))
    pcm = np.concatenate([read_wav_16k_mono(FIXTURES / "balcao_pt.wav"), np.zeros(16_000, dtype=np.int16)])
    seen: list[dict] = []
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"api_key": fresh_key}))  # a client of the seed's protocol: no transcripts
        hello = json.loads(await ws.recv())
        for offset in range(0, pcm.size, 1600):
            await ws.send(pcm[offset : offset + 1600].tobytes())
        card = await until(ws, seen, lambda m: m["comando"] == "recomendar" and m["origem"] == "playbook")
        feedback = {"comando": "feedback", "interacao_id": card["interacao_id"], "util": True, "origem": "playbook"}
        await ws.send(json.dumps(feedback))
        ack = await until(ws, seen, lambda m: m["comando"] in ("feedback_registrado", "erro"))
        assert ack == {"comando": "feedback_registrado", "interacao_id": card["interacao_id"]}
        unknown = str(uuid.uuid4())
        await ws.send(json.dumps({"comando": "feedback", "interacao_id": unknown, "util": False}))
        refused = await until(ws, seen, lambda m: m["comando"] == "erro")
        assert refused["codigo"] == "interacao_desconhecida" and unknown in refused["mensagem"]
        await ws.send(json.dumps({"comando": "feedback", "interacao_id": unknown}))
        assert (await until(ws, seen, lambda m: m["comando"] == "erro"))["codigo"] == "feedback_invalido"
        await ws.send(json.dumps({"comando": "ping"}))  # the connection stayed open through all that
        await until(ws, seen, lambda m: m["comando"] == "pong")
        await ws.send(json.dumps({"comando": "fim"}))
        await until(ws, seen, lambda m: m["comando"] == "encerrado")

    assert card["sugestoes"] and len(card["sugestoes"]) <= 3
    assert by_command(seen, "transcricao") == []
    checklists = by_command(seen, "checklist")
    assert not checklists[0]["encerrada"] and checklists[-1]["encerrada"]
    assert {i["id"] for i in checklists[0]["itens"]} >= {"cpf_nota", "fidelidade", "posologia"}
    assert len({c["conversa_id"] for c in checklists}) == 1

    rows = await stored_rows(db, hello["conexao_id"], seen)
    hit = next(r for r in rows if str(r["uuid"]) == card["interacao_id"])
    assert hit["playbook_sugestoes"] == card["sugestoes"]
    assert set(hit["playbook_regras"]) == {"dor_de_cabeca"}
    assert hit["ts_playbook_sent"] is not None and hit["ts_trans_resp"] <= hit["ts_playbook_sent"]
    assert all(str(r["conversa_id"]) == checklists[0]["conversa_id"] for r in rows)
    assert all(set(r["checklist"]) == {i["id"] for i in checklists[0]["itens"]} for r in rows)
    async with db.connect() as conn:
        stored = (
            (
                await conn.execute(
                    sa.text("SELECT * FROM feedback WHERE interacao_uuid = :u"), {"u": card["interacao_id"]}
                )
            )
            .mappings()
            .all()
        )
    assert [(f["util"], f["origem"], f["balcao_id"], f["conexao_id"]) for f in stored] == [
        (True, "playbook", hello["balcao_id"], hello["conexao_id"])
    ]


async def handshake(server, payload) -> tuple[list[dict], int | None]:
    messages = []
    async with websockets.connect(server.url) as ws:
        await ws.send(payload)
        try:
            while True:
                messages.append(json.loads(await ws.recv()))
        except websockets.ConnectionClosed:
            pass
        return messages, ws.close_code


@pytest.mark.parametrize(
    ("payload", "code", "close"),
    [
        ("isto não é json", "handshake_invalido", 4400),
        (json.dumps({"vad_settings": {}}), "handshake_invalido", 4400),
        (json.dumps({"api_key": 42}), "handshake_invalido", 4400),
        (json.dumps({"api_key": "bk_nao_existe"}), "api_key_invalida", 4401),
        (b"\x1a\x45\xdf\xa3 audio first", "handshake_esperado", 4400),
    ],
)
async def test_bad_handshakes_get_an_error_frame_and_a_documented_close(server, payload, code, close):
    messages, close_code = await handshake(server, payload)
    assert messages == [{"comando": "erro", "codigo": code, "mensagem": messages[0]["mensagem"]}]
    assert close_code == close


async def test_bad_vad_settings_are_refused_with_the_reason(server):
    payload = json.dumps({"api_key": server.key, "vad_settings": {"threshold_multiplier": 0.2}})
    messages, close_code = await handshake(server, payload)
    assert messages[0]["codigo"] == "vad_settings_invalidas"
    assert "threshold_multiplier" in messages[0]["mensagem"]
    assert close_code == 4422


async def test_vad_settings_are_echoed_and_ping_gets_pong(server):
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"api_key": server.key, "vad_settings": {"min_energy": 120}}))
        hello = json.loads(await ws.recv())
        assert hello["vad_settings"] == {"threshold_multiplier": 1.5, "min_energy": 120.0}
        await ws.send(json.dumps({"comando": "ping"}))
        assert json.loads(await ws.recv()) == {"comando": "pong"}
        await ws.send(json.dumps({"comando": "dançar"}))
        assert json.loads(await ws.recv())["codigo"] == "comando_desconhecido"
        await ws.send(json.dumps({"comando": "feedback", "interacao_id": "abc", "util": True}))
        assert json.loads(await ws.recv())["codigo"] == "interacao_desconhecida"
        await ws.send(json.dumps({"comando": "fim"}))
        assert json.loads(await ws.recv()) == {"comando": "encerrado", "interacoes": 0}
