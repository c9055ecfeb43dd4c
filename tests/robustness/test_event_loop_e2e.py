"""The server on uvloop (EVENT_LOOP=uvloop): a WebM counter through its ffmpeg child and a PCM one
get their transcripts, each ffmpeg child is reaped when its connection ends, and SIGTERM still
drains and exits."""

from __future__ import annotations

import asyncio
import json
import signal

import psutil
import pytest
import websockets

from tests.support.encode import chunks_of, webm_opus
from tests.support.live_server import StreamResult, live_server, server_env, stream_pcm

pytestmark = [pytest.mark.e2e]


async def stream_webm(url: str, key: str, webm: bytes, duration_s: float) -> StreamResult:
    """WebM/Opus in 100 ms pieces at twice real time, then `fim`; everything the server sends."""
    result = StreamResult()
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"api_key": key, "transcricao": True, "audio": {"format": "webm"}}))
        for piece in chunks_of(webm, duration_s, 0.1):
            await ws.send(piece)
            await asyncio.sleep(0.05)
        await ws.send(json.dumps({"comando": "fim"}))
        async for raw in ws:
            result.messages.append(json.loads(raw))
        result.close_code = ws.close_code
    return result


async def test_the_server_on_uvloop_streams_reaps_its_children_and_stops(pg, stt, speech, tmp_path):
    pytest.importorskip("uvloop")
    env = server_env(pg.url, tmp_path / "data", stt, EVENT_LOOP="uvloop")
    with live_server(env, tmp_path / "server.log") as server:
        key = server.new_key("B-UVLOOP")
        duration_s = speech.size / 16_000
        webm, pcm = await asyncio.gather(
            stream_webm(server.url, key, webm_opus(speech, tmp_path), duration_s),
            stream_pcm(server.url, key, speech, speed=2.0, loop=False),
        )
        for result in (webm, pcm):
            assert result.of("transcricao"), result.messages[-3:]
            assert result.of("encerrado"), result.messages[-3:]
        # The WebM connection's ffmpeg child exited with it and was reaped: no child, no zombie.
        children = psutil.Process(server.process.pid).children()
        for _ in range(50):
            if not children:
                break
            await asyncio.sleep(0.1)
            children = psutil.Process(server.process.pid).children()
        assert not children, [(c.name(), c.status()) for c in children]
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.process.wait, 60) in (0, -signal.SIGTERM)
    log = (tmp_path / "server.log").read_text()
    assert "serving on uvloop's event loop (EVENT_LOOP=uvloop)" in log, log[-3000:]
    assert "Application shutdown complete" in log, log[-3000:]
