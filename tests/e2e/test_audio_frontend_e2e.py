"""The audio front-end through the real server: WebM/Opus and Ogg as browsers send them, bad audio
refused with a documented code, and no ffmpeg child or file descriptor left behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import psutil
import pytest
import websockets

from balto.app.replay import stream
from balto.evaluation import wer
from tests.support import encode
from tests.support.audio import FIXTURES, fixture_manifest, read_wav

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PCM = read_wav(FIXTURES / "balcao_pt.wav")
SAID = fixture_manifest()["balcao_pt.wav"]["text"]
DURATION = PCM.size / 16_000


def transcripts(messages: list[dict]) -> str:
    return " ".join(m["texto"] for m in messages if m.get("comando") == "transcricao")


@pytest.mark.parametrize(("kind", "chunk_s"), [("webm", 0.02), ("webm", 0.25), ("webm", 1.0), ("ogg", 0.25)])
async def test_browser_formats_stream_and_transcribe(server, openai_stub, tmp_path, kind, chunk_s):
    data = (encode.webm_opus if kind == "webm" else encode.ogg_opus)(PCM, tmp_path)
    messages = await stream(encode.chunks_of(data, DURATION, chunk_s), server.key, server.url, interval_s=0)
    assert messages[0]["comando"] == "conectado" and messages[-1]["comando"] == "encerrado"
    assert wer(SAID, transcripts(messages)) <= 0.5, transcripts(messages)
    spans = [(m["inicio"], m["fim"]) for m in messages if m.get("comando") == "transcricao"]
    truth = [(u["speech_start_s"], u["speech_end_s"]) for u in fixture_manifest()["balcao_pt.wav"]["utterances"]]
    # Opus adds a few ms of codec delay; boundaries stay within a couple of 30 ms frames.
    assert spans[0][0] == pytest.approx(truth[0][0], abs=0.1)
    assert spans[-1][1] == pytest.approx(truth[-1][1], abs=0.15)


async def test_pcm_at_48k_stereo_declared_in_the_handshake(server, openai_stub):
    data = encode.pcm_48k_stereo(PCM)
    pieces = [data[i : i + 19_200] for i in range(0, len(data), 19_200)]  # 100 ms each
    extra = {"audio": {"format": "pcm_s16le", "sample_rate": 48000, "channels": 2}}
    messages = await stream(pieces, server.key, server.url, interval_s=0, handshake_extra=extra)
    assert wer(SAID, transcripts(messages)) <= 0.5, transcripts(messages)


async def error_of(server, first: dict, pieces: list[bytes]) -> tuple[list[dict], int | None]:
    messages: list[dict] = []
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"api_key": server.key, **first}))
        messages.append(json.loads(await ws.recv()))
        with contextlib.suppress(websockets.ConnectionClosed):
            for piece in pieces:
                await ws.send(piece)
            await ws.send(json.dumps({"comando": "fim"}))
            while True:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        return messages, ws.close_code


@pytest.mark.parametrize(
    ("first", "pieces", "code"),
    [
        ({"audio": {"format": "webm"}}, [b"\x00garbage, not a webm stream" * 40], "audio_invalido"),
        ({}, [b"\x1a\x45\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x1f", b"\xff" * 5000], "audio_invalido"),
        ({}, [PCM[:16000].tobytes(), b"OggS" + b"\x00" * 200], "formato_mudou"),
    ],
)
async def test_undecodable_audio_gets_an_erro_frame_and_close_4415(server, first, pieces, code):
    messages, close_code = await error_of(server, first, pieces)
    assert messages[0]["comando"] == "conectado"
    assert {"comando": "erro", "codigo": code} | {"mensagem": messages[-1].get("mensagem")} == messages[-1]
    assert close_code == 4415


def ffmpeg_children(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # it may exit between the listing and the look
            if "ffmpeg" in child.name():
                found.append(child)
    return found


async def test_many_connections_that_vanish_leave_no_ffmpeg_and_no_fd(server, openai_stub, tmp_path):
    server_process = psutil.Process(server.process.pid)
    webm = encode.webm_opus(PCM, tmp_path)

    async def vanish(i: int) -> None:
        ws = await websockets.connect(server.url)
        await ws.send(json.dumps({"api_key": server.key}))
        await ws.recv()
        await ws.send(webm[: 2000 + 531 * i])  # stop mid-chunk
        await asyncio.sleep(0.05)
        if i % 3 == 0:
            await ws.close()  # polite
        else:
            ws.transport.abort()  # the client vanishes: no close frame

    async def settle() -> None:
        deadline = time.monotonic() + 20
        while ffmpeg_children(server.process.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    # A first batch warms the database pool up (its connections are kept on purpose), then the count.
    await asyncio.gather(*(vanish(i) for i in range(10)))
    await settle()
    fds_before = server_process.num_fds()
    for batch in range(1, 6):
        await asyncio.gather(*(vanish(batch * 10 + i) for i in range(10)))
    deadline = time.monotonic() + 20
    while ffmpeg_children(server.process.pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert ffmpeg_children(server.process.pid) == []
    while server_process.num_fds() > fds_before and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert server_process.num_fds() <= fds_before
