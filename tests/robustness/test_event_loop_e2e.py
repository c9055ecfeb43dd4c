"""The server on uvloop (EVENT_LOOP=uvloop): a WebM counter through its ffmpeg child and a PCM one
get their transcripts, each ffmpeg child is reaped when its connection ends, and SIGTERM still
drains and exits."""

from __future__ import annotations

import asyncio
import signal

import psutil
import pytest

from balto.app.replay import stream
from tests.support.encode import chunks_of, webm_opus
from tests.support.live_server import live_server, server_env, stream_pcm

pytestmark = [pytest.mark.e2e]


async def test_the_server_on_uvloop_streams_reaps_its_children_and_stops(pg, stt, speech, tmp_path):
    pytest.importorskip("uvloop")
    env = server_env(pg.url, tmp_path / "data", stt, EVENT_LOOP="uvloop")
    with live_server(env, tmp_path / "server.log") as server:
        key = server.new_key("B-UVLOOP")
        duration_s = speech.size / 16_000
        # WebM/Opus in 100 ms pieces at twice real time, beside PCM at the same pace.
        webm, pcm = await asyncio.gather(
            stream(
                chunks_of(webm_opus(speech, tmp_path), duration_s, 0.1),
                key,
                server.url,
                interval_s=0.05,
                handshake_extra={"audio": {"format": "webm"}},
            ),
            stream_pcm(server.url, key, speech, speed=2.0, loop=False),
        )
        for commands in ([m.get("comando") for m in webm], [m.get("comando") for m in pcm.messages]):
            assert "transcricao" in commands, commands[-3:]
            assert "encerrado" in commands, commands[-3:]
        # The WebM connection's ffmpeg child exited with it and was reaped: no child, no zombie.
        for _ in range(50):
            children = psutil.Process(server.process.pid).children()
            if not children:
                break
            await asyncio.sleep(0.1)
        assert not children, [(c.name(), c.status()) for c in children]
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.process.wait, 60) in (0, -signal.SIGTERM)
    log = (tmp_path / "server.log").read_text()
    assert "serving on uvloop's event loop (EVENT_LOOP=uvloop)" in log, log[-3000:]
    assert "Application shutdown complete" in log, log[-3000:]
