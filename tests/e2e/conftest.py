"""The real server in a subprocess (`python -m balto serve`), on a free port, with a real database,
the packaged Whisper model and the OpenAI-compatible stub as its LLM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from balto.adapters.postgres import create_engine
from tests.support.audio import FIXTURES
from tests.support.live_server import free_port


@dataclass
class RunningServer:
    url: str
    http: str
    key: str
    env: dict[str, str]
    process: subprocess.Popen
    log: Path


def balto(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "balto", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def server(pg, openai_server, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("balto-data")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg.url,
        "BALTO_DATA_DIR": str(data_dir),
        "LLM_PROVIDER": "openai_compatible",
        "LLM_BASE_URL": openai_server.base_url,
        "LLM_API_KEY": "sk-e2e",
        "LLM_TIMEOUT_S": "5",
        "PLAYBOOK_FILE": str(Path(__file__).resolve().parents[2] / "playbooks" / "farmacia.yaml"),
        "PLAYBOOK_ENABLED": "true",
        "PORT": str(port),
        "LOG_LEVEL": "INFO",
        "BALTO_ADMIN_KEY": "e2e-admin-key",
        # Some tests open ten connections at once with the session's key (WS_MAX_CONNECTIONS_PER_KEY is 4).
        "WS_MAX_CONNECTIONS_PER_KEY": "0",
    }
    for name in ("POSTGRES_HOST", "XAI_API_KEY", "OPENAI_API_KEY", "LLM_FALLBACK_PROVIDER", "LLM_SYSTEM_PROMPT_FILE"):
        env.pop(name, None)
    log_path = data_dir / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen([sys.executable, "-m", "balto", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    http = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{http}/health", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    created = balto("keys", "create", "--balcao", "B-E2E", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    yield RunningServer(f"ws://127.0.0.1:{port}/ws", http, key, env, process, log_path)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture
async def db(pg):
    engine = create_engine(pg.url)
    yield engine
    await engine.dispose()


@pytest.fixture
def fresh_key(server) -> str:
    """A key for a balcão of its own: playbook cool-downs are per balcão, so a test that expects a card
    must not share a counter with a test that just showed it."""
    created = balto("keys", "create", "--balcao", f"B-E2E-{uuid.uuid4().hex[:6]}", env=server.env)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
async def browser(tmp_path_factory):
    """Headless Debian Chromium whose fake microphone plays balcao_pt.wav (in a loop), driven by
    Playwright; installed on first use, or the browser tests skip with the reason."""
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, ensure_chromium

    reason = await asyncio.to_thread(ensure_chromium)  # apt-get may take minutes
    if reason is not None:
        pytest.skip(f"no Chromium for the browser tests: {reason}")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("no Playwright for the browser tests: pip install -e '.[dev]'")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh --user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={FIXTURES / 'balcao_pt.wav'}"],
            viewport={"width": 1280, "height": 900},
            locale="pt-BR",
        )
        try:
            yield context
        finally:
            await context.close()
