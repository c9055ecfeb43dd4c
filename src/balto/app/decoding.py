"""Choosing a decoder per connection: declared by the handshake, else sniffed from the first bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from balto.adapters.pcm import PcmDecoder, parse_wav_header, sniff
from balto.domain.audio import AudioFormat, PcmChunk
from balto.ports.audio import AudioDecoder, DecodeError

HEADER_LIMIT = 64 * 1024  # a WAV header this long without a data chunk is not a WAV header

ContainerDecoderFactory = Callable[[AudioFormat], AudioDecoder]


class AutoDecoder(AudioDecoder):
    """Routes the stream to the cheapest decoder that can read it.

    - `pcm_s16le` (declared, or no container magic in the first bytes): in-process, no child.
    - WAV with 16-bit PCM: the header is parsed here and the samples go the PCM way.
    - WebM, Ogg, other WAV encodings: a container decoder (an ffmpeg child per connection).

    A declared format is checked against the first bytes: a client that declares WebM and sends
    PCM (or the reverse) gets an error instead of noise.
    """

    def __init__(self, fmt: AudioFormat, container_decoder: ContainerDecoderFactory) -> None:
        self._declared = fmt
        self._container_decoder = container_decoder
        self._inner: AudioDecoder | None = None
        self._head = b""
        self._head_arrival = 0.0
        self._ready = asyncio.Event()
        self._closed = False
        self.kind: str | None = None  # which way the stream went: pcm, wav, webm, ogg
        if fmt.format == "pcm_s16le":
            self._inner, self.kind = PcmDecoder(fmt), "pcm"
            self._ready.set()

    async def write(self, data: bytes, received_at: float) -> None:
        if self._closed:
            return
        if self._inner is not None:
            await self._inner.write(data, received_at)
            return
        self._head += data
        self._head_arrival = received_at
        await self._route(final=False)

    async def _route(self, final: bool) -> None:
        head = self._head
        if len(head) < 12 and not final:
            return
        found = sniff(head)
        declared = self._declared.format
        if declared not in ("auto", found or "pcm_s16le"):
            raise DecodeError(
                "audio_invalido",
                f"o handshake declarou {declared}, mas os primeiros bytes são de {found or 'PCM sem cabeçalho'}",
            )
        inner: AudioDecoder
        if found is None:
            self.kind, inner = "pcm", PcmDecoder(AudioFormat("pcm_s16le", 16_000, 1), check_magic=False)
            payload = head
        elif found == "wav":
            header = parse_wav_header(head)
            if header is None:
                if len(head) > HEADER_LIMIT or final:
                    raise DecodeError("audio_invalido", "cabeçalho WAV incompleto")
                return
            if header.is_pcm16:
                fmt = AudioFormat("pcm_s16le", header.sample_rate, header.channels)
                self.kind, inner = "wav", PcmDecoder(fmt, check_magic=False)
                payload = head[header.data_offset :]
            else:
                self.kind, inner = "wav", self._container_decoder(AudioFormat("wav"))
                payload = head
        else:
            self.kind, inner = found, self._container_decoder(AudioFormat(found))
            payload = head
        self._inner, self._head = inner, b""
        self._ready.set()
        if payload:
            await inner.write(payload, self._head_arrival)

    async def finish(self) -> None:
        if self._inner is None and not self._closed:
            if self._head:
                await self._route(final=True)
            else:
                self._inner = PcmDecoder(AudioFormat())
                self._ready.set()
        if self._inner is not None:
            await self._inner.finish()

    async def chunks(self) -> AsyncIterator[PcmChunk]:
        await self._ready.wait()
        if self._inner is None:
            return
        async for chunk in self._inner.chunks():
            yield chunk

    async def aclose(self) -> None:
        self._closed = True
        self._ready.set()
        if self._inner is not None:
            await self._inner.aclose()
