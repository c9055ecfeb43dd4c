"""A counter client for the command line: streams a WAV file to /ws and prints what the server says."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_MS = 100


def read_wav_16k_mono(path: Path) -> np.ndarray:
    """int16 samples at 16 kHz mono; other rates and channel counts are converted here, in the client."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV files are supported")
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != 16_000:
        duration = samples.size / rate
        target = np.arange(int(duration * 16_000)) / 16_000
        samples = np.interp(target, np.arange(samples.size) / rate, samples)
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)


async def stream(
    pieces: list[bytes],
    api_key: str,
    url: str = "ws://127.0.0.1:8000/ws",
    interval_s: float = 0.1,
    handshake_extra: dict[str, Any] | None = None,
    on_message: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Send the handshake, then each piece `interval_s` apart (0: as fast as possible), then `fim`.

    Returns every message the server sent, in order, once it has closed the connection.
    """
    import websockets

    messages: list[dict[str, Any]] = []
    handshake: dict[str, Any] = {"api_key": api_key, "transcricao": True, **(handshake_extra or {})}

    def got(raw: str | bytes) -> None:
        message = json.loads(raw)
        messages.append(message)
        if on_message:
            on_message(message)

    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps(handshake))
        got(await ws.recv())
        if messages[0].get("comando") != "conectado":
            return messages

        async def reader() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for raw in ws:
                    got(raw)

        reading = asyncio.create_task(reader())
        started = time.monotonic()
        try:
            for index, piece in enumerate(pieces):
                await ws.send(piece)
                if interval_s > 0:
                    await asyncio.sleep(max(0.0, started + (index + 1) * interval_s - time.monotonic()))
            await ws.send(json.dumps({"comando": "fim"}))
        except websockets.ConnectionClosed:
            pass  # the server ended the connection (e.g. an erro frame); the reader has its messages
        await reading
    return messages


async def replay(
    path: Path,
    api_key: str,
    url: str = "ws://127.0.0.1:8000/ws",
    speed: float = 1.0,
    vad_settings: dict[str, float] | None = None,
    on_message: Callable[[dict[str, Any]], None] | None = None,
    tail_silence_s: float = 1.0,
) -> list[dict[str, Any]]:
    """Stream `path` at `speed` x real time (0 = as fast as possible), then ask the server to finish.

    A WAV file goes as raw PCM in 100 ms frames, followed by a second of silence so the VAD sees the
    end of the last sentence, as it would at a real counter. Any other file (WebM/Opus, Ogg) goes as
    it is, in pieces of about 250 ms, and the server sniffs its format.
    """
    extra: dict[str, Any] = {"vad_settings": vad_settings} if vad_settings else {}
    if path.suffix.lower() == ".wav":
        pcm = await asyncio.to_thread(read_wav_16k_mono, path)
        pcm = np.concatenate([pcm, np.zeros(int(16_000 * tail_silence_s), dtype=np.int16)])
        step = 16_000 * CHUNK_MS // 1000
        pieces = [pcm[offset : offset + step].tobytes() for offset in range(0, pcm.size, step)]
        interval = CHUNK_MS / 1000 / speed if speed > 0 else 0.0
    else:
        data = await asyncio.to_thread(path.read_bytes)
        duration = await asyncio.to_thread(_duration_s, path)
        count = max(1, round(duration / 0.25))
        size = -(-len(data) // count)
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        interval = duration / len(pieces) / speed if speed > 0 else 0.0
    return await stream(pieces, api_key, url, interval, extra, on_message)


def _duration_s(path: Path) -> float:
    """Duration of any audio file, by decoding it once with the bundled ffmpeg."""
    import subprocess

    from balto.adapters.ffmpeg import ffmpeg_exe

    decoded = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "16000", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return len(decoded) / 32_000


def main(path: Path, api_key: str, url: str, speed: float) -> int:
    def show(message: dict[str, Any]) -> None:
        print(json.dumps(message, ensure_ascii=False), flush=True)

    messages = asyncio.run(replay(path, api_key, url, speed, on_message=show))
    return 0 if messages and messages[0].get("comando") == "conectado" else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], "ws://127.0.0.1:8000/ws", 1.0))
