"""Raw PCM s16le 16 kHz mono: the decoder (no process, no copy beyond the byte-to-sample view) and the
in-memory WAV that transcription vendors take as an upload."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator

import numpy as np

from balto.domain.audio import AudioFormat, PcmChunk
from balto.ports.audio import AudioDecoder, DecodeError

_END = object()


class RawPcmDecoder(AudioDecoder):
    """Frames may split a sample in two; the odd byte is carried to the next frame."""

    def __init__(self, fmt: AudioFormat | None = None, max_pending_chunks: int = 64) -> None:
        fmt = fmt or AudioFormat()
        if (fmt.sample_rate, fmt.channels) != (16_000, 1):
            raise DecodeError(
                "formato_audio_nao_suportado",
                f"PCM bruto precisa ser 16000 Hz mono, recebido {fmt.sample_rate} Hz com {fmt.channels} canais",
            )
        self._carry = b""
        self._queue: asyncio.Queue[object] = asyncio.Queue(max_pending_chunks)
        self._closed = False

    async def write(self, data: bytes, received_at: float) -> None:
        if self._closed:
            return
        data = self._carry + data
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        if usable:
            samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
            await self._queue.put(PcmChunk(samples, received_at))

    async def finish(self) -> None:
        if not self._closed:
            self._closed = True
            await self._queue.put(_END)

    async def chunks(self) -> AsyncIterator[PcmChunk]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            assert isinstance(item, PcmChunk)
            yield item

    async def aclose(self) -> None:
        self._closed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_END)


def pcm_to_wav(pcm: np.ndarray, rate: int = 16_000) -> bytes:
    """A 16-bit mono WAV file in memory: the one container every transcription vendor accepts."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return buffer.getvalue()
