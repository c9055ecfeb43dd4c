"""SIGTERM mid-stream: the server tells every counter it is going, finishes the segments in flight,
flushes the write queue, and exits; afterwards every interaction a client was told about is a row."""

from __future__ import annotations

import asyncio
import signal

import pytest
import sqlalchemy as sa

from tests.support.live_server import live_server, server_env, stream_pcm
from tests.support.stt_servers import SttReply

pytestmark = [pytest.mark.e2e]


async def test_sigterm_mid_stream_loses_no_row(pg, engine, stt, speech, tmp_path):
    # A slow vendor, so that segments are being transcribed when the signal arrives.
    stt.default = SttReply(text="Bom dia", delay_s=0.8)
    env = server_env(pg.url, tmp_path / "data", stt, SHUTDOWN_GRACE_S="20")
    with live_server(env, tmp_path / "server.log") as server:
        key = server.new_key("B-SIGTERM")
        clients = [asyncio.create_task(stream_pcm(server.url, key, speech, speed=2.0, max_s=60)) for _ in range(3)]
        # Let each client get a few segments processed, then stop the server under them.
        for _ in range(200):
            if server.metrics().get("balto_segments_total", 0) >= 6:
                break
            await asyncio.sleep(0.25)
        server.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*clients)
        # uvicorn re-raises the signal it handled once the shutdown is complete.
        assert await asyncio.to_thread(server.process.wait, 60) in (0, -signal.SIGTERM)
    log = (tmp_path / "server.log").read_text()
    assert "Application shutdown complete" in log, log[-3000:]

    told = 0
    for result in results:
        assert result.of("encerrando"), f"no encerrando frame: {result.messages[-3:]}\n{log[-3000:]}"
        (done,) = result.of("encerrado")
        assert result.close_code == 1001
        told += done["interacoes"]
    async with engine.connect() as conn:
        stored = (
            (await conn.execute(sa.text("SELECT uuid::text FROM interacoes WHERE balcao_id = 'B-SIGTERM'")))
            .scalars()
            .all()
        )
    seen = {m["interacao_id"] for r in results for m in r.of("transcricao")}
    assert seen, log[-3000:]
    assert seen <= set(stored), "a transcript the client saw has no row"
    assert len(stored) == told, f"clients were told {told} interactions, the table has {len(stored)}"
    assert told >= 6
