"""The real server in a subprocess for the robustness tests: transcription by the local OpenAI-audio
stub (so no Whisper model loads and a segment costs milliseconds), speaker identification and the
playbook off, an LLM only when a test asks for one; a database and a data dir of the test's choosing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from balto.app.metrics import parse
from tests.support.stt_servers import OpenAIAudioStub


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    http: str
    env: dict[str, str]
    process: subprocess.Popen
    log: Path
    keys: list[str] = field(default_factory=list)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.http}{path}", timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        status, text = self.get("/metrics")
        assert status == 200, text
        return parse(text)

    def new_key(self, balcao: str) -> str:
        created = subprocess.run(
            [sys.executable, "-m", "balto", "keys", "create", "--balcao", balcao],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        return created.stdout.strip().splitlines()[-1]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server ignored SIGTERM for {timeout} s:\n{self.log.read_text()[-4000:]}") from None


def server_env(database_url: str, data_dir: Path, stt: OpenAIAudioStub, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BALTO_DATA_DIR": str(data_dir),
        "STT_PROVIDER": "openai",
        "STT_OPENAI_BASE_URL": stt.base_url,
        "STT_OPENAI_API_KEY": stt.api_key,
        "STT_TIMEOUT_S": "3",
        "SPEAKER_ID": "off",
        "AUDIO_CLEANER": "off",
        "PLAYBOOK_ENABLED": "false",
        "LOG_LEVEL": "INFO",
        **extra,
    }
    for name in ("POSTGRES_HOST", "XAI_API_KEY", "OPENAI_API_KEY", "LLM_SYSTEM_PROMPT_FILE", "SMART_ROUTING_ENABLED"):
        if name not in extra:
            env.pop(name, None)
    if "LLM_PROVIDER" not in extra:
        env.pop("LLM_PROVIDER", None)
        env.pop("LLM_FALLBACK_PROVIDER", None)
    return env


@contextmanager
def live_server(env: dict[str, str], log_path: Path, start_timeout_s: float = 90.0) -> Iterator[LiveServer]:
    port = free_port()
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
    log = log_path.open("w")
    process = subprocess.Popen([sys.executable, "-m", "balto", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}", env, process, log_path)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                if server.get("/ready", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def pcm_handshake(key: str, transcripts: bool = True) -> str:
    return json.dumps({"api_key": key, "transcricao": transcripts, "audio": {"format": "pcm_s16le"}})


@dataclass
class StreamResult:
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    sent_s: float = 0.0

    def of(self, command: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("comando") == command]


async def stream_pcm(
    url: str,
    key: str,
    pcm: np.ndarray,
    *,
    speed: float = 1.0,
    chunk_s: float = 0.1,
    loop: bool = True,
    stop: asyncio.Event | None = None,
    max_s: float = 120.0,
    result: StreamResult | None = None,
) -> StreamResult:
    """Send `pcm` (16 kHz mono int16) in chunks at `speed` times real time, looping until the server
    closes or `stop` is set (then `fim`), collecting everything the server sends (into `result`, which
    the caller may watch while it fills)."""
    result = StreamResult() if result is None else result
    step = int(16_000 * chunk_s)
    data = pcm.astype("<i2").tobytes()
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        await ws.send(pcm_handshake(key))

        async def receive() -> None:
            try:
                async for raw in ws:
                    result.messages.append(json.loads(raw))
            except websockets.ConnectionClosed:
                pass

        receiver = asyncio.create_task(receive())
        started = time.monotonic()
        offset = 0
        try:
            while not receiver.done() and time.monotonic() - started < max_s and not (stop and stop.is_set()):
                chunk = data[offset * 2 : (offset + step) * 2]
                if not chunk:
                    if not loop:
                        break
                    offset = 0
                    continue
                await ws.send(chunk)
                offset += step
                result.sent_s += step / 16_000
                await asyncio.sleep(chunk_s / speed)
            if not receiver.done():
                await ws.send(json.dumps({"comando": "fim"}))
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(receiver, 60)
        result.close_code = ws.close_code
    return result
