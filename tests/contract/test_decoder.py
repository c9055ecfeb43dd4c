"""AudioDecoder contract: bytes in, the same samples out, in order, however the bytes are split."""

from __future__ import annotations

import numpy as np
import pytest

from balto.adapters.pcm import RawPcmDecoder
from balto.domain.audio import AudioFormat
from balto.ports.audio import DecodeError


@pytest.fixture(params=["raw_pcm"])
def new_decoder(request):
    return lambda: RawPcmDecoder(AudioFormat("pcm_s16le", 16_000, 1))


async def decode_all(decoder, data: bytes, split: int) -> tuple[np.ndarray, list[float]]:
    import asyncio

    out: list[np.ndarray] = []
    stamps: list[float] = []

    async def read():
        async for chunk in decoder.chunks():
            out.append(chunk.samples)
            stamps.append(chunk.received_at)

    reader = asyncio.create_task(read())
    for i, offset in enumerate(range(0, len(data), split)):
        await decoder.write(data[offset : offset + split], 100.0 + i)
    await decoder.finish()
    await reader
    await decoder.aclose()
    return (np.concatenate(out) if out else np.zeros(0, dtype=np.int16)), stamps


@pytest.mark.parametrize("split", [1, 3, 7, 320, 4001])
async def test_samples_survive_any_split(new_decoder, split):
    samples = (np.arange(8000) * 7 % 65536 - 32768).astype(np.int16)
    decoded, stamps = await decode_all(new_decoder(), samples.tobytes(), split)
    np.testing.assert_array_equal(decoded, samples)
    assert stamps == sorted(stamps)


async def test_receive_time_is_that_of_the_bytes(new_decoder):
    samples = np.ones(1600, dtype=np.int16)
    _, stamps = await decode_all(new_decoder(), samples.tobytes(), 640)
    assert stamps[0] == 100.0 and stamps[-1] == 104.0


def test_raw_pcm_refuses_rates_it_cannot_take():
    with pytest.raises(DecodeError) as info:
        RawPcmDecoder(AudioFormat("pcm_s16le", 48_000, 2))
    assert info.value.code == "formato_audio_nao_suportado"
