"""Every connection limit against a real server, each with its documented close code; revoked keys;
/ready and /metrics; JSON logs that carry the connection and balcão ids and never an API key."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from urllib.parse import urlparse

import numpy as np
import pytest
import websockets

from tests.robustness.rawws import frame, upgrade
from tests.support.live_server import live_server, pcm_handshake, server_env

pytestmark = [pytest.mark.e2e]


async def exchange(url: str, frames: list[str | bytes], wait_s: float = 10.0) -> tuple[list[dict], int | None]:
    """Send the frames, then read until the server closes; its messages and close code."""
    messages: list[dict] = []
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        try:
            for data in frames:
                await ws.send(data)
        except websockets.ConnectionClosed:
            pass  # refused before the handshake was read: what it sent is still to be read
        try:
            async with asyncio.timeout(wait_s):
                async for raw in ws:
                    messages.append(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        return messages, ws.close_code


def balto(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "balto", *args], env=env, capture_output=True, text=True, check=True)


def errors(messages: list[dict]) -> list[str]:
    return [m["codigo"] for m in messages if m.get("comando") == "erro"]


async def test_limits_close_codes_revocation_and_operability(pg, stt, tmp_path):
    env = server_env(
        pg.url,
        tmp_path / "data",
        stt,
        LOG_FORMAT="json",
        HANDSHAKE_TIMEOUT_S="1",
        WS_MAX_FRAME_BYTES="4096",
        WS_MAX_SESSION_S="3",
        WS_MAX_AUDIO_AHEAD_S="5",
        WS_MAX_CONNECTIONS_PER_KEY="2",
        WS_MAX_CONNECTIONS="3",
        WS_HANDSHAKE_FAILURES_MAX="3",
        WS_HANDSHAKE_FAILURES_WINDOW_S="600",
        WS_PING_INTERVAL_S="1",
        WS_PING_TIMEOUT_S="1",
    )
    with live_server(env, tmp_path / "server.log") as server:
        key, other, revoked = (server.new_key(f"B-LIM-{n}") for n in range(3))
        url = server.url
        assert server.get("/health")[0] == 200
        status, body = server.get("/ready")
        assert status == 200 and json.loads(body)["database"] == "ok"

        # Frame over WS_MAX_FRAME_BYTES: 4413, after the handshake.
        messages, code = await exchange(url, [pcm_handshake(key), b"\0" * 5000])
        assert code == 4413 and errors(messages) == ["frame_muito_grande"]

        # Audio far ahead of real time: 10 s of silence sent at once; WS_MAX_AUDIO_AHEAD_S=5.
        silence = np.zeros(1600, dtype="<i2").tobytes()  # 0.1 s per frame
        messages, code = await exchange(url, [pcm_handshake(key), *([silence] * 100)])
        assert code == 4431 and errors(messages) == ["audio_acima_do_tempo_real"]

        # The session may last WS_MAX_SESSION_S: closed with 4410 after its rows are stored.
        messages, code = await exchange(url, [pcm_handshake(key)], wait_s=10)
        assert code == 4410 and errors(messages) == ["sessao_longa_demais"]
        assert messages[-1]["comando"] == "encerrado"

        # Per key, and in total.
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            for ws, k in ((a, key), (b, key)):
                await ws.send(pcm_handshake(k))
                assert json.loads(await ws.recv())["comando"] == "conectado"
            messages, code = await exchange(url, [pcm_handshake(key)])
            assert code == 4409 and errors(messages) == ["conexoes_por_chave_excedidas"]
            async with websockets.connect(url) as c:
                await c.send(pcm_handshake(other))
                assert json.loads(await c.recv())["comando"] == "conectado"
                messages, code = await exchange(url, [pcm_handshake(other)])
                assert code == 1013 and errors(messages) == ["servidor_lotado"]

        # Keep-alive: a client that stops answering pings (here: never reads again) is closed, its session ended.
        session_limit_closes = server.metrics()['balto_ws_closes_total{code="4410"}']
        address = urlparse(server.http)
        dead = upgrade(address.hostname or "127.0.0.1", address.port or 80)
        dead.sendall(frame(0x1, pcm_handshake(key).encode()))
        await asyncio.sleep(0.5)
        assert server.metrics()["balto_connections_open"] == 1
        for _ in range(40):
            if server.metrics()["balto_connections_open"] == 0:
                break
            await asyncio.sleep(0.25)
        assert server.metrics()["balto_connections_open"] == 0, "a dead client was not closed"
        # Closed by the keep-alive (1 s + 1 s), not by WS_MAX_SESSION_S (3 s).
        assert server.metrics()['balto_ws_closes_total{code="4410"}'] == session_limit_closes
        dead.close()

        # A revoked key is refused at its next handshake.
        messages, _ = await exchange(url, [pcm_handshake(revoked), json.dumps({"comando": "fim"})])
        assert messages[0]["comando"] == "conectado"
        listed = (await asyncio.to_thread(balto, server.env, "keys", "list")).stdout
        key_id = next(line.split("\t")[0] for line in listed.splitlines() if "\tB-LIM-2\t" in line)
        await asyncio.to_thread(balto, server.env, "keys", "revoke", key_id)
        messages, code = await exchange(url, [pcm_handshake(revoked)])
        assert code == 4401 and errors(messages) == ["api_key_invalida"]  # failure 1 from this address

        # No handshake within HANDSHAKE_TIMEOUT_S: 4408 (failure 2); binary first: 4400 (failure 3).
        messages, code = await exchange(url, [])
        assert code == 4408 and errors(messages) == ["handshake_timeout"]
        messages, code = await exchange(url, [b"\x00\x01"])
        assert code == 4400
        # Three failed handshakes from 127.0.0.1 in the window: even a good key is turned away now.
        messages, code = await exchange(url, [pcm_handshake(key)])
        assert code == 4429 and errors(messages) == ["muitas_tentativas"]

        metrics = server.metrics()
        for code in (4413, 4431, 4410, 4409, 1013, 4401, 4408, 4400, 4429):
            assert metrics[f'balto_ws_closes_total{{code="{code}"}}'] >= 1, code
        assert metrics['balto_errors_total{codigo="muitas_tentativas"}'] == 1
        assert metrics["balto_connections_open"] == 0

    log = (tmp_path / "server.log").read_text()
    for plain in (key, other, revoked):
        assert plain not in log, "an API key was logged"
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(r.get("conexao_id") and r.get("balcao_id") == "B-LIM-0" for r in records)
