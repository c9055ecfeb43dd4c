"""A counter client for the command line: streams a WAV file to /ws and prints what the server says."""

from __future__ import annotations

import asyncio
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

    Returns every message the server sent, in order. A second of silence follows the file so the
    VAD sees the end of the last sentence, as it would at a real counter.
    """
    import websockets

    pcm = read_wav_16k_mono(path)
    pcm = np.concatenate([pcm, np.zeros(int(16_000 * tail_silence_s), dtype=np.int16)])
    step = 16_000 * CHUNK_MS // 1000
    messages: list[dict[str, Any]] = []
    handshake: dict[str, Any] = {"api_key": api_key, "transcricao": True}
    if vad_settings:
        handshake["vad_settings"] = vad_settings

    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps(handshake))
        first = json.loads(await ws.recv())
        messages.append(first)
        if on_message:
            on_message(first)
        if first.get("comando") != "conectado":
            return messages

        async def reader() -> None:
            async for raw in ws:
                message = json.loads(raw)
                messages.append(message)
                if on_message:
                    on_message(message)

        reading = asyncio.create_task(reader())
        started = time.monotonic()
        for index, offset in enumerate(range(0, pcm.size, step)):
            await ws.send(pcm[offset : offset + step].tobytes())
            if speed > 0:
                due = started + (index + 1) * CHUNK_MS / 1000 / speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        await ws.send(json.dumps({"comando": "fim"}))
        await reading
    return messages


def main(path: Path, api_key: str, url: str, speed: float) -> int:
    def show(message: dict[str, Any]) -> None:
        print(json.dumps(message, ensure_ascii=False), flush=True)

    messages = asyncio.run(replay(path, api_key, url, speed, on_message=show))
    return 0 if messages and messages[0].get("comando") == "conectado" else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], "ws://127.0.0.1:8000/ws", 1.0))
