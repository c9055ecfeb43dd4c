"""Raw PCM s16le and PCM WAV, decoded in-process (no child process, resampled with libsoxr when
needed), and the in-memory WAV that transcription vendors take as an upload."""

from __future__ import annotations

import asyncio
import io
import struct
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from balto.domain.audio import AudioFormat, PcmChunk
from balto.ports.audio import AudioDecoder, DecodeError

_END = object()
TARGET_RATE = 16_000
MAX_RATE = 192_000
MAX_CHANNELS = 8
CONTAINER_MAGIC = (b"\x1a\x45\xdf\xa3", b"OggS", b"RIFF")


def sniff(head: bytes) -> str | None:
    """The container the first bytes announce: webm (EBML), ogg, wav, or None for headerless PCM."""
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"RIFF") and head[8:12] in (b"WAVE", b""):
        return "wav"
    return None


class PcmDecoder(AudioDecoder):
    """Interleaved s16le at any rate and channel count in, 16 kHz mono out.

    Frames may split a sample (or a multi-channel frame) anywhere; the remainder is carried to the
    next write. A later frame that starts with a container's magic bytes means the client switched
    formats mid-stream, which is refused rather than decoded as noise.
    """

    def __init__(self, fmt: AudioFormat | None = None, max_pending_chunks: int = 64, check_magic: bool = True) -> None:
        fmt = fmt or AudioFormat()
        if not 8_000 <= fmt.sample_rate <= MAX_RATE or not 1 <= fmt.channels <= MAX_CHANNELS:
            raise DecodeError(
                "formato_audio_nao_suportado",
                f"PCM de {fmt.sample_rate} Hz com {fmt.channels} canais não é suportado "
                f"(8000-{MAX_RATE} Hz, 1-{MAX_CHANNELS} canais)",
            )
        self._rate = fmt.sample_rate
        self._channels = fmt.channels
        self._frame_bytes = 2 * fmt.channels
        self._resampler = None
        if fmt.sample_rate != TARGET_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(fmt.sample_rate, TARGET_RATE, 1, dtype="int16", quality="HQ")
        self._carry = b""
        self._check_magic = check_magic
        self._started = False
        self._queue: asyncio.Queue[object] = asyncio.Queue(max_pending_chunks)
        self._finished = False
        self._closed = False
        self._last_arrival = 0.0

    async def write(self, data: bytes, received_at: float) -> None:
        if self._closed or self._finished or not data:
            return
        if self._check_magic and data[:4] in CONTAINER_MAGIC:
            container = sniff(data) or "contêiner"
            if self._started:
                raise DecodeError("formato_mudou", f"o fluxo de áudio mudou de formato no meio ({container} após PCM)")
            raise DecodeError("audio_invalido", f"o handshake declarou PCM, mas os primeiros bytes são de {container}")
        self._check_magic = True  # the first write may legitimately carry a header we already parsed
        self._started = True
        self._last_arrival = received_at
        data = self._carry + data
        usable = len(data) - len(data) % self._frame_bytes
        self._carry = data[usable:]
        if usable:
            samples = self._to_mono_16k(np.frombuffer(data[:usable], dtype="<i2"))
            if samples.size:
                await self._queue.put(PcmChunk(samples, received_at))

    def _to_mono_16k(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._channels > 1:
            samples = samples.reshape(-1, self._channels).mean(axis=1).round().astype(np.int16)
        else:
            samples = samples.astype(np.int16, copy=True)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples, last=last)
        return samples

    async def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._resampler is not None and not self._closed:
            tail = self._to_mono_16k(np.zeros(0, dtype=np.int16), last=True)
            if tail.size:
                await self._queue.put(PcmChunk(tail, self._last_arrival))
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


@dataclass(frozen=True)
class WavHeader:
    audio_format: int  # 1 = PCM, 3 = float, 0xFFFE = extensible
    channels: int
    sample_rate: int
    bits: int
    data_offset: int  # where the samples start in the stream

    @property
    def is_pcm16(self) -> bool:
        return self.audio_format in (1, 0xFFFE) and self.bits == 16


def parse_wav_header(head: bytes) -> WavHeader | None:
    """The header of a WAV stream once its `data` chunk starts, or None while more bytes are needed.

    Streams have no reliable sizes (a live writer puts 0 or 0xFFFFFFFF), so only chunk order is used.
    """
    if len(head) < 12:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise DecodeError("audio_invalido", "cabeçalho WAV inválido")
    offset, fmt = 12, None
    while offset + 8 <= len(head):
        chunk_id, size = head[offset : offset + 4], struct.unpack("<I", head[offset + 4 : offset + 8])[0]
        if chunk_id == b"data":
            if fmt is None:
                raise DecodeError("audio_invalido", "WAV sem bloco fmt antes dos dados")
            audio_format, channels, rate, _, _, bits = fmt
            return WavHeader(audio_format, channels, rate, bits, offset + 8)
        if offset + 8 + size > len(head):
            if size > 1 << 16:
                raise DecodeError("audio_invalido", f"bloco WAV {chunk_id!r} grande demais antes dos dados")
            return None
        if chunk_id == b"fmt ":
            if size < 16:
                raise DecodeError("audio_invalido", "bloco fmt do WAV curto demais")
            fmt = struct.unpack("<HHIIHH", head[offset + 8 : offset + 24])
        offset += 8 + size + (size & 1)
    return None


def pcm_to_wav(pcm: np.ndarray, rate: int = 16_000) -> bytes:
    """A 16-bit mono WAV file in memory: the one container every transcription vendor accepts."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return buffer.getvalue()
