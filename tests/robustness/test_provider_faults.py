"""Transcription and LLM vendors that answer 500, hang, or send garbage, through the real server:
sessions go on, SMART_ROUTING and the LLM fallback step in, and the rows say what happened."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from tests.support.live_server import StreamResult, live_server, server_env, stream_pcm
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.stt_servers import ElevenLabsStub, SttReply

pytestmark = [pytest.mark.e2e]

LONG = "Bom dia eu queria um remédio para dor de cabeça forte por favor"  # > 10 words: the LLM fires


async def rows(engine) -> list[dict]:
    async with engine.connect() as conn:
        result = await conn.execute(
            sa.text(
                "SELECT stt_provider, stt_status, stt_error, ia_status, ia_provider, grok_raw_response "
                "FROM interacoes WHERE balcao_id = 'B-FAULTS' ORDER BY id"
            )
        )
        return [dict(r) for r in result.mappings().all()]


async def test_failing_vendors_fall_back_and_rows_record_it(pg, engine, stt, speech, tmp_path):
    with ElevenLabsStub() as eleven, OpenAIServer() as primary, OpenAIServer() as fallback:
        fallback.stub.reset(Reply.suggestions("Fallback: ofereça água"))
        env = server_env(
            pg.url,
            tmp_path / "data",
            stt,
            SMART_ROUTING_ENABLED="true",
            SMART_ROUTING_PROVIDERS="openai,elevenlabs",
            SMART_ROUTING_SHORT_PROVIDER="none",
            SMART_ROUTING_TIMEOUT_S="1",
            SMART_ROUTING_BREAKER_FAILURES="1000",  # every segment tries the failing vendor first
            ELEVENLABS_API_KEY=eleven.api_key,
            ELEVENLABS_BASE_URL=eleven.base_url,
            LLM_PROVIDER="openai_compatible",
            LLM_BASE_URL=primary.base_url,
            LLM_API_KEY="sk-primary",
            LLM_TIMEOUT_S="1.5",
            LLM_FALLBACK_PROVIDER="openai_compatible",
            LLM_FALLBACK_BASE_URL=fallback.base_url,
            LLM_FALLBACK_API_KEY="sk-fallback",
        )
        phases = [
            # (openai STT, elevenlabs STT, primary LLM)
            (SttReply(status=500), SttReply(text=LONG), Reply(status=500, body='{"error": "boom"}')),
            (SttReply(delay_s=3), SttReply(text=LONG), Reply(delay_s=4, content="{}")),
            (SttReply(body="<<< not json"), SttReply(status=500), Reply(content="isto não é JSON")),
        ]
        with live_server(env, tmp_path / "server.log") as server:
            key = server.new_key("B-FAULTS")
            primary_calls = 0
            stop = asyncio.Event()
            result = StreamResult()
            client = asyncio.create_task(
                stream_pcm(server.url, key, speech, speed=2.0, stop=stop, max_s=300, result=result)
            )
            for openai_stt, eleven_stt, llm in phases:
                stt.default, eleven.default = openai_stt, eleven_stt
                primary_calls += len(primary.stub.requests)
                primary.stub.reset(llm)
                target = server.metrics().get("balto_segments_total", 0) + 4
                deadline = time.monotonic() + 90
                while server.metrics().get("balto_segments_total", 0) < target:
                    assert time.monotonic() < deadline and not client.done(), "the session stopped"
                    await asyncio.sleep(0.25)
            stop.set()
            await client
            assert server.alive()

    assert result.of("encerrado") and result.close_code == 1000
    stored = await rows(engine)
    served = [r for r in stored if r["stt_provider"] == "elevenlabs" and r["stt_status"] == "ok"]
    failed = [r for r in stored if r["stt_status"] == "erro"]
    assert len(served) >= 6, stored
    assert failed and all("openai" in r["stt_error"] and "elevenlabs" in r["stt_error"] for r in failed)
    answered = [r for r in stored if r["ia_status"] == "ok"]
    assert answered and all("Fallback: ofereça água" in r["grok_raw_response"] for r in answered)
    assert primary_calls >= 2 and fallback.stub.requests  # the primary was asked, and failed every time
