"""End to end: a voice enrolled over HTTP (and from the CLI) is recognised in a conversation streamed
through /ws to the real server, stored with every cycle, and sent with the transcript frames."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from balto.app.replay import replay
from tests.e2e.conftest import balto
from tests.support.audio import silence, write_wav
from tests.support.openai_server import Reply
from tests.support.postgres import stored_rows
from tests.support.speakers import SPEAKER_FIXTURES, voice

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def new_key(server, balcao: str) -> str:
    created = balto("keys", "create", "--balcao", balcao, env=server.env)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


async def test_enrolled_attendant_and_an_unknown_customer(server, openai_stub, db, tmp_path):
    openai_stub.reset(Reply.suggestions("Ofereça a vitamina em promoção"))
    key = new_key(server, "B-SPK")
    async with httpx.AsyncClient(base_url=server.http, timeout=60) as http:
        enrolled = await http.post(
            "/admin/speakers",
            headers={"X-Admin-Key": server.env["BALTO_ADMIN_KEY"]},
            data={"nome": "Ana", "papel": "atendente", "balcao_id": "B-SPK"},
            files=[("arquivos", ("ana.opus", (SPEAKER_FIXTURES / "voz_d_enroll.opus").read_bytes(), "audio/ogg"))],
        )
        assert enrolled.status_code == 201, enrolled.text
        ana = enrolled.json()["perfil"]["id"]
        refused = await http.get("/admin/speakers", headers={"X-Admin-Key": "wrong"})
        assert refused.status_code == 401

    # Ana speaks, a customer nobody enrolled answers, Ana speaks again.
    conversation = np.concatenate(
        [silence(0.5), voice("voz_d"), silence(1.5), voice("voz_j"), silence(1.5), voice("voz_d"), silence(1.0)]
    )
    messages = await replay(write_wav(tmp_path / "conversa.wav", conversation), key, server.url, speed=0)
    assert messages[0]["comando"] == "conectado" and messages[-1]["comando"] == "encerrado"
    rows = await stored_rows(db, messages[0]["conexao_id"], messages)
    identified = [r for r in rows if r["speaker_data"] is not None]
    assert len(identified) >= 3, [(r["transcricao"], r["segmento_inicio"]) for r in rows]

    customer_starts = 0.5 + voice("voz_d").size / 16_000 + 1.5
    customer_span = (customer_starts, customer_starts + voice("voz_j").size / 16_000)
    seen = {"ana": 0, "cliente": 0}
    for row in identified:
        data = json.loads(row["speaker_data"])
        assert [d["prob"] for d in data] == sorted((d["prob"] for d in data), reverse=True)
        assert {d["id"] for d in data} == {ana, "desconhecido"}
        middle = (row["segmento_inicio"] + row["segmento_fim"]) / 2
        if customer_span[0] < middle < customer_span[1]:
            assert row["speaker_top_id"] == "desconhecido", data
            assert data[0] == {**data[0], "id": "desconhecido", "nome": "cliente_1", "papel": "cliente"}
            seen["cliente"] += 1
        else:
            assert row["speaker_top_id"] == ana, data
            assert data[0]["nome"] == "Ana" and data[0]["papel"] == "atendente"
            assert row["speaker_score"] == pytest.approx(data[0]["score"], abs=1e-4)
            seen["ana"] += 1
    assert seen["ana"] >= 2 and seen["cliente"] >= 1, seen

    frames = {m["interacao_id"]: m for m in messages if m["comando"] == "transcricao"}
    for row in identified:
        frame = frames.get(str(row["uuid"]))
        if frame is None:  # nothing transcribed: no frame
            continue
        assert frame["falante_id"] == row["speaker_top_id"]
        if row["speaker_top_id"] == ana:
            assert (frame["falante"], frame["falante_nome"], frame["falante_papel"]) == (
                "Atendente",
                "Ana",
                "atendente",
            )
        else:
            assert (frame["falante"], frame["falante_nome"], frame["falante_papel"]) == (
                "Cliente",
                "cliente_1",
                "cliente",
            )
        assert 0.5 < frame["falante_prob"] <= 1.0

    # The LLM read the conversation with who said what.
    fired = [r for r in rows if r["ts_ai_req"] is not None]
    assert fired and "Atendente: " in fired[0]["transcricao_completa"]
    assert "Cliente: " in " ".join(r["transcricao_completa"] or "" for r in fired)


async def test_cli_enrolls_lists_and_deletes_a_voice(server):
    files = [str(SPEAKER_FIXTURES / "voz_e_enroll.opus"), str(SPEAKER_FIXTURES / "voz_e_test.opus")]
    enrolled = balto(
        "speakers", "enroll", "--name", "Bia", "--role", "atendente", "--balcao", "B-CLI", *files, env=server.env
    )
    assert enrolled.returncode == 0, enrolled.stderr
    profile_id = enrolled.stdout.strip().splitlines()[-1]
    assert "from 2 recording(s)" in enrolled.stderr
    listed = balto("speakers", "list", "--balcao", "B-CLI", env=server.env)
    assert f"{profile_id}\tBia\tatendente\tB-CLI\t2\tresemblyzer" in listed.stdout.splitlines()

    silent = balto(
        "speakers",
        "enroll",
        "--name",
        "Mudo",
        "--role",
        "atendente",
        str(SPEAKER_FIXTURES / "speakers.json"),
        env=server.env,
    )
    assert silent.returncode != 0 and "not an audio file" in silent.stderr

    deleted = balto("speakers", "delete", profile_id, env=server.env)
    assert deleted.returncode == 0 and f"profile {profile_id} deleted" in deleted.stdout
    assert balto("speakers", "delete", profile_id, env=server.env).returncode != 0
