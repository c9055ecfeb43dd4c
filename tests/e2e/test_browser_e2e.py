"""The counter page and the console in a real headless Chromium, against the real server: the fake
microphone plays balcao_pt.wav, MediaRecorder streams WebM/Opus over /ws, and the page must show the
transcript and a card; the rows must be stored; the console must list the counter and the interaction.
Screenshots of both pages go to tests/artifacts/."""

from __future__ import annotations

import base64
import math
import re
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from balto.adapters.ffmpeg import decode_audio_file
from balto.app.console import STATIC
from balto.evaluation import wer
from tests.e2e.conftest import balto
from tests.support.audio import fixture_manifest
from tests.support.browser import ARTIFACTS
from tests.support.postgres import poll_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EBML = b"\x1a\x45\xdf\xa3"
ADMIN_KEY = "e2e-admin-key"  # the e2e server's BALTO_ADMIN_KEY

# The counter page's MediaRecorder timeslice.
TIMESLICE_MS = int(re.search(r"const TIMESLICE_MS = (\d+);", (STATIC / "balcao.js").read_text()).group(1))

# Records `ms` of the fake microphone exactly as the counter page does (WebM/Opus, its timeslice) and
# hands back every chunk, base64, with the time it arrived.
RECORD_JS = """
async ([ms, timeslice]) => {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
  const recorder = new MediaRecorder(stream, {mimeType: "audio/webm;codecs=opus", audioBitsPerSecond: 32000});
  const chunks = [], times = [];
  recorder.ondataavailable = (e) => { chunks.push(e.data); times.push(performance.now()); };
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  const t0 = performance.now();
  recorder.start(timeslice);
  await new Promise((resolve) => setTimeout(resolve, ms));
  recorder.stop();
  await stopped;
  stream.getTracks().forEach((t) => t.stop());
  const encoded = [];
  for (const chunk of chunks) {
    const bytes = new Uint8Array(await chunk.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 8192) binary += String.fromCharCode(...bytes.subarray(i, i + 8192));
    encoded.push(btoa(binary));
  }
  return {mime: recorder.mimeType, chunks: encoded, times: times.map((t) => t - t0)};
}
"""


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def server_log(server) -> str:
    return server.log.read_text()[-4000:]


async def test_chromium_mediarecorder_makes_webm_opus_that_ffmpeg_decodes_and_whisper_transcribes(
    browser, server, whisper
):
    page = await browser.new_page()
    try:
        await page.goto(f"{server.http}/balcao")  # any page of the server's origin: getUserMedia needs one
        recorded = await page.evaluate(RECORD_JS, [6000, TIMESLICE_MS])
    finally:
        await page.close()
    chunks = [base64.b64decode(c) for c in recorded["chunks"]]
    assert recorded["mime"].startswith("audio/webm") and "opus" in recorded["mime"]
    assert chunks[0][:4] == EBML, "the first chunk must carry the EBML header"
    assert not any(c[:4] == EBML for c in chunks[1:]), "later chunks are bare clusters"
    # The last chunk is the flush at stop(); the others come at the timeslice, rounded up to whole Opus
    # packets: Chromium's encoder packs 60 ms frames, so a 100 ms timeslice gives a chunk every 120 ms
    # (and 250 ms one every 300 ms).
    expected_ms = math.ceil(TIMESLICE_MS / 60) * 60
    times = recorded["times"][:-1]
    interval_ms = float(np.median(np.diff(times)))
    print(
        f"MediaRecorder: {len(chunks)} chunks in 6 s, one every {interval_ms:.0f} ms (median), "
        f"{1000 / interval_ms:.2f} per second, {sum(map(len, chunks))} bytes"
    )
    assert expected_ms - 60 <= interval_ms <= expected_ms + 20, f"a chunk every {interval_ms:.0f} ms"
    assert len(chunks) >= 6000 / (expected_ms + 20) - 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chromium.webm"
        path.write_bytes(b"".join(chunks))
        pcm = decode_audio_file(path)
    assert pcm.size / 16_000 == pytest.approx(6.0, abs=0.6)
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 100, "the fake microphone's audio is in the stream"
    said = fixture_manifest()["balcao_pt.wav"]["utterances"][0]["text"]
    heard = (await whisper.transcribe(pcm, "pt")).text
    print(f"Whisper on Chromium's WebM/Opus: {heard!r}")
    assert wer(said, heard) <= 0.35, heard


async def wait_for_text(locator, pattern: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = await locator.inner_text()
        if re.search(pattern, text, re.IGNORECASE):
            return text
        await locator.page.wait_for_timeout(250)
    raise AssertionError(f"{pattern!r} did not show within {timeout_s:g} s; the page shows: {text!r}")


async def test_counter_page_streams_the_microphone_and_the_console_lists_it(browser, server, openai_stub, db):
    balcao = f"B-WEB-{uuid.uuid4().hex[:6]}"  # a balcão of its own: playbook cool-downs are per balcão
    created = balto("keys", "create", "--balcao", balcao, env=server.env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]

    counter = await browser.new_page()
    console = await browser.new_page()
    try:
        await counter.goto(f"{server.http}/balcao")
        await counter.fill("#api-key", key)
        await counter.fill("#vad-mult", "1.5")
        await counter.fill("#vad-min", "50")
        await counter.click("#iniciar")
        await counter.wait_for_selector('#estado[data-estado="conectado"]', timeout=20_000)
        assert balcao in await counter.inner_text("#estado")

        # While the counter streams, the console lists it as connected.
        await console.goto(f"{server.http}/console")
        await console.fill("#admin-key", ADMIN_KEY)
        await console.click("#entrar button[type=submit]")
        await console.wait_for_selector(f'#conectados tr[data-balcao="{balcao}"]', timeout=10_000)

        # The fixture: "Bom dia, eu estou com muita dor de cabeça. Você tem algum remédio para dor de cabeça?"
        transcript = await wait_for_text(counter.locator("#transcricao"), r"dor de cabe", 60)
        await counter.wait_for_selector(".cartao.playbook", timeout=30_000)
        card = await counter.inner_text(".cartao.playbook")
        assert "Playbook" in card or "PLAYBOOK" in card
        transcript = await wait_for_text(counter.locator("#transcricao"), r"rem[eé]dio", 40)
        await counter.wait_for_selector(".cartao.llm", timeout=30_000)  # the stub LLM's card
        assert "Ofereça um analgésico" in await counter.inner_text(".cartao.llm")
        assert await counter.locator("#sugestoes > li").count() >= 2
        peak = int(await counter.get_attribute(".medidor", "data-pico") or 0)
        assert peak >= 30, f"the level meter never rose above {peak}% while the fixture played"
        await counter.screenshot(path=str(screenshot_path("balcao.png")), full_page=True)

        await counter.click("#parar")
        await wait_for_text(counter.locator("#aviso"), r"Sessão encerrada", 60)
        await counter.wait_for_selector('#estado[data-estado="desconectado"]', timeout=10_000)
    except Exception as exc:
        await counter.screenshot(path=str(screenshot_path("balcao-falha.png")), full_page=True)
        raise AssertionError(f"{exc}\nserver log:\n{server_log(server)}") from exc

    # The last rows may land a moment after the page says the session ended (the write queue).
    rows = await poll_rows(
        db,
        "SELECT uuid::text AS uuid, transcricao, playbook_sugestoes, ia_status, recomendacao_gerada, "
        "ts_trans_sent, ts_playbook_sent FROM interacoes WHERE balcao_id = :b ORDER BY id",
        {"b": balcao},
        lambda rows: any(r["ia_status"] == "ok" for r in rows),
    )
    spoken = " ".join(r["transcricao"] or "" for r in rows)
    assert re.search(r"dor de cabe", spoken, re.IGNORECASE), spoken
    assert any(r["playbook_sugestoes"] and r["ts_playbook_sent"] for r in rows)
    assert any(r["transcricao"] and r["ts_trans_sent"] for r in rows)
    assert any(r["ia_status"] == "ok" and r["recomendacao_gerada"] == "S: Ofereça um analgésico" for r in rows)
    print(f"page transcript: {transcript!r}; {len(rows)} rows stored for {balcao}")

    try:
        # The console, refreshed: the counter is gone, its interactions are listed with their latencies.
        await console.click("#atualizar")
        await console.wait_for_selector(f'#conectados tr[data-balcao="{balcao}"]', state="detached", timeout=10_000)
        newest = rows[-1]["uuid"]
        group = console.locator(f'.grupo-balcao[data-balcao="{balcao}"]')
        await group.locator(f'tr[data-uuid="{newest}"]').wait_for(timeout=10_000)
        assert re.search(r"dor de cabe", await group.inner_text(), re.IGNORECASE)
        await console.wait_for_selector('.histograma[data-etapa="ate_transcricao"]', timeout=10_000)
        await console.wait_for_selector('#grafico-etapas rect[data-etapa="transcricao"]', timeout=10_000)
        bars = console.locator('.histograma[data-etapa="ate_transcricao"] rect')
        heights = [float(await bars.nth(i).get_attribute("height") or 0) for i in range(await bars.count())]
        assert sum(h > 0 for h in heights) >= 1, heights
        assert await console.locator("#grafico-ciclos rect").count() >= len(rows)
        await console.screenshot(path=str(screenshot_path("console.png")), full_page=True)
    except Exception as exc:
        await console.screenshot(path=str(screenshot_path("console-falha.png")), full_page=True)
        raise AssertionError(f"{exc}\nserver log:\n{server_log(server)}") from exc
    finally:
        await counter.close()
        await console.close()
    print(f"screenshots: {screenshot_path('balcao.png')} {screenshot_path('console.png')}")


async def test_counter_page_reconnects_with_back_off_and_says_so(browser, server, fresh_key):
    """The first two connections drop (closed with 1011 before the handshake reaches the server); the
    page says so, waits longer each time, and the third reaches the real server."""
    attempts: list[float] = []

    async def flaky(route) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            await route.close(code=1011, reason="queda simulada")
        else:
            route.connect_to_server()

    page = await browser.new_page()
    try:
        await page.route_web_socket(re.compile(r".*/ws$"), flaky)
        await page.goto(f"{server.http}/balcao")
        await page.fill("#api-key", fresh_key)
        await page.click("#iniciar")
        await page.wait_for_selector('#estado[data-estado="reconectando"]', timeout=10_000)
        assert "reconectando em" in (await page.inner_text("#estado")).lower()
        await wait_for_text(page.locator("#aviso"), r"A conexão caiu \(código 1011\)", 5)
        await page.wait_for_selector('#estado[data-estado="conectado"]', timeout=20_000)
        assert len(attempts) == 3
        first_wait, second_wait = attempts[1] - attempts[0], attempts[2] - attempts[1]
        print(f"reconnected after waiting {first_wait:.2f} s, then {second_wait:.2f} s")
        assert 0.7 <= first_wait <= 1.6 and 1.5 <= second_wait <= 3.0  # 1 s, then 2 s, ±20% jitter
        await page.click("#parar")
        await page.wait_for_selector('#estado[data-estado="desconectado"]', timeout=30_000)
    finally:
        await page.close()


async def test_counter_page_does_not_retry_a_refused_key(browser, server):
    page = await browser.new_page()
    try:
        await page.goto(f"{server.http}/balcao")
        await page.fill("#api-key", "bk_nao_existe")
        await page.click("#iniciar")
        await page.wait_for_selector('#estado[data-estado="erro"]', timeout=10_000)
        await wait_for_text(page.locator("#aviso"), r"api_key_invalida", 5)
        await page.wait_for_timeout(1500)  # longer than the first back-off: no new attempt
        assert await page.get_attribute("#estado", "data-estado") == "erro"
        assert await page.is_enabled("#iniciar") and not await page.is_enabled("#parar")
    finally:
        await page.close()
