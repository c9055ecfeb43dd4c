"""AudioDecoder contract: every way a counter may send audio decodes to the same 16 kHz mono signal,
however the bytes are split, with arrival times attached; the decoder's resources are released."""

from __future__ import annotations

import asyncio

import numpy as np
import psutil
import pytest

from balto.adapters.ffmpeg import FfmpegDecoder
from balto.adapters.pcm import PcmDecoder
from balto.app.decoding import AutoDecoder
from balto.domain.audio import AudioFormat
from balto.ports.audio import DecodeError
from tests.support import encode
from tests.support.audio import FIXTURES, read_wav

PCM = read_wav(FIXTURES / "balcao_pt.wav")
DURATION = PCM.size / 16_000


def auto(fmt: str = "auto", rate: int = 16_000, channels: int = 1) -> AutoDecoder:
    return AutoDecoder(AudioFormat(fmt, rate, channels), container_decoder=FfmpegDecoder)


@pytest.fixture(scope="module")
def encodings(tmp_path_factory):
    work = tmp_path_factory.mktemp("enc")
    return {
        "pcm16k": (PCM.astype("<i2").tobytes(), lambda: PcmDecoder(AudioFormat())),
        "pcm48k_stereo": (encode.pcm_48k_stereo(PCM), lambda: PcmDecoder(AudioFormat("pcm_s16le", 48_000, 2))),
        "wav_sniffed": (encode.wav_pcm16(PCM), lambda: auto()),
        "wav_float_ffmpeg": (encode.wav_float(PCM, work), lambda: auto("wav")),
        "webm_sniffed": (encode.webm_opus(PCM, work), lambda: auto()),
        "webm_declared": (encode.webm_opus(PCM, work), lambda: auto("webm")),
        "ogg_sniffed": (encode.ogg_opus(PCM, work), lambda: auto()),
    }


async def decode(decoder, pieces: list[bytes]) -> tuple[np.ndarray, list[float]]:
    out: list[np.ndarray] = []
    stamps: list[float] = []

    async def read():
        async for chunk in decoder.chunks():
            out.append(chunk.samples)
            stamps.append(chunk.received_at)

    reader = asyncio.create_task(read())
    for i, piece in enumerate(pieces):
        await decoder.write(piece, 100.0 + i)
    await decoder.finish()
    await asyncio.wait_for(reader, 30)
    await decoder.aclose()
    return (np.concatenate(out) if out else np.zeros(0, dtype=np.int16)), stamps


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    a, b = a[:n].astype(np.float64), b[:n].astype(np.float64)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) or 1))


@pytest.mark.parametrize(
    "name",
    ["pcm16k", "pcm48k_stereo", "wav_sniffed", "wav_float_ffmpeg", "webm_sniffed", "webm_declared", "ogg_sniffed"],
)
@pytest.mark.parametrize("chunk_s", [0.02, 0.25, 1.0])
async def test_every_encoding_decodes_to_the_same_signal_whatever_the_chunking(encodings, name, chunk_s):
    data, new = encodings[name]
    decoded, stamps = await decode(new(), encode.chunks_of(data, DURATION, chunk_s))
    assert abs(decoded.size - PCM.size) <= 480, (decoded.size, PCM.size)  # within a 30 ms frame
    if name in ("pcm16k", "wav_sniffed", "wav_float_ffmpeg"):
        assert similarity(decoded, PCM) > 0.999
    else:
        # Opus is lossy and resampling shifts phase slightly; the waveform still matches closely.
        assert similarity(decoded, PCM) > 0.9
    assert stamps == sorted(stamps) and stamps[0] >= 100.0


async def test_a_chunk_is_stamped_with_the_arrival_of_its_bytes():
    pieces = [np.full(1600, i, dtype=np.int16).tobytes() for i in range(5)]
    _, stamps = await decode(PcmDecoder(AudioFormat()), pieces)
    assert stamps == [100.0, 101.0, 102.0, 103.0, 104.0]


async def test_odd_splits_carry_half_samples_and_half_frames():
    stereo = encode.pcm_48k_stereo(PCM[:16_000])
    pieces = [stereo[i : i + 7] for i in range(0, len(stereo), 7)]
    decoded, _ = await decode(PcmDecoder(AudioFormat("pcm_s16le", 48_000, 2)), pieces)
    assert abs(decoded.size - 16_000) <= 64


async def test_raw_pcm_starts_no_process():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    decoder = auto()
    await decoder.write(PCM[:8000].tobytes(), 1.0)
    assert decoder.kind == "pcm"
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
    await decoder.finish()
    await decoder.aclose()


@pytest.mark.parametrize(
    ("fmt", "data", "code"),
    [
        ("webm", b"\x00\x01garbage that is not webm" * 50, "audio_invalido"),
        ("auto", b"\x1a\x45\xdf\xa3" + b"\x00" * 30, "audio_invalido"),  # truncated EBML header
        ("ogg", b"OggS" + bytes(range(256)) * 4, "audio_invalido"),
        ("webm", b"just some pcm bytes..." * 10, "audio_invalido"),  # declared webm, sent PCM
        ("pcm_s16le", b"\x1a\x45\xdf\xa3" + b"\x00" * 100, "audio_invalido"),  # declared PCM, sent webm
    ],
)
async def test_undecodable_input_is_a_decode_error_with_a_code(fmt, data, code):
    decoder = auto(fmt)
    with pytest.raises(DecodeError) as info:
        await decode(decoder, [data])
    assert info.value.code == code and info.value.message
    await decoder.aclose()


async def test_a_stream_that_changes_format_midway_is_refused(encodings):
    decoder = auto()
    with pytest.raises(DecodeError) as info:
        await decode(decoder, [PCM[:16_000].tobytes(), encodings["webm_sniffed"][0][:4000]])
    assert info.value.code == "formato_mudou"


async def test_webm_then_garbage_is_an_error(encodings):
    webm = encodings["webm_sniffed"][0]
    decoder = auto()
    with pytest.raises(DecodeError):
        await decode(decoder, [webm[:20_000], b"\xff" * 50_000, webm[20_000:]])


async def test_aclose_kills_and_reaps_the_child_mid_stream(encodings):
    decoder = FfmpegDecoder(AudioFormat("webm"))
    await decoder.write(encodings["webm_sniffed"][0][:5000], 1.0)
    pid = decoder.pid
    assert pid is not None and psutil.pid_exists(pid)
    await decoder.aclose()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE is False


async def test_many_decoders_leave_no_process_and_no_file_descriptor(encodings):
    me = psutil.Process()
    webm = encodings["webm_sniffed"][0]
    await asyncio.sleep(0.1)
    fds_before = me.num_fds()
    for i in range(40):
        decoder = auto()
        await decoder.write(webm[: 3000 + i * 97], 1.0)  # cut mid-chunk, like a client vanishing
        if i % 2:
            await decoder.finish()
        await decoder.aclose()
    await asyncio.sleep(0.1)
    assert [p for p in me.children(recursive=True) if "ffmpeg" in p.name()] == []
    assert me.num_fds() <= fds_before


async def test_an_idle_child_costs_little_memory_of_its_own(encodings):
    """Issue 8 budgets 5 MB per idle connection, ffmpeg child included. A static non-PIE ffmpeg shares
    its pages with every other child; a PIE one relocates 4 MB of pointer tables in each (7 MB apiece)."""
    webm = encodings["webm_sniffed"][0]
    decoders = [FfmpegDecoder(AudioFormat("webm")) for _ in range(4)]
    try:
        for decoder in decoders:
            await decoder.write(webm[:20_000], 1.0)
        await asyncio.sleep(1.5)
        unique = [psutil.Process(d.pid).memory_full_info().uss for d in decoders]
    finally:
        for decoder in decoders:
            await decoder.aclose()
    assert max(unique) < 3e6, f"ffmpeg children hold {[round(u / 1e6, 1) for u in unique]} MB of their own"
