"""Front-end benchmark: decode + VAD (+ optional cleaning) CPU cost per audio-second per stream.

    .venv/bin/python -m bench.frontend [--streams 8] [--seconds 120] [--speed 4] [--formats webm pcm]

Builds a seeded counter-like recording (speech turns with pauses and cafe noise at 20 dB; the
shared real recordings when present, else the committed fixtures with pink noise), encodes it as a
browser's MediaRecorder would (WebM/Opus, 250 ms timeslices) or leaves it raw PCM, and streams it
into N concurrent front-ends in this process: AutoDecoder (an ffmpeg child per WebM stream, none
for PCM) -> webrtcvad -> energy gate -> segmenter, exactly the production classes. CPU is this
process plus its reaped children (os.times), divided by the audio seconds streamed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import psutil

from balto.adapters.ffmpeg import FfmpegDecoder
from balto.adapters.noisereduce_cleaner import NoiseReduceCleaner
from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.app.decoding import AutoDecoder
from balto.domain.audio import AudioFormat
from balto.domain.vad import FRAME_SAMPLES, Segmenter
from bench import machine
from bench.audio import RATE, build_conversation

TIMESLICE_S = 0.1  # the counter page's MediaRecorder timeslice (TIMESLICE_MS in static/balcao.js)


def encode_webm(pcm: np.ndarray) -> bytes:
    """WebM/Opus as a browser's MediaRecorder makes it: 48 kHz mono, 20 ms Opus frames at 32 kbit/s,
    encoded with a current libopus (PyAV's 1.6, as browsers ship one), not with the server's ffmpeg:
    the counters' encoder is not the server's to choose, and the libopus 1.3.1 inside the server's
    ffmpeg 7.0.2 encodes speech measurably worse (live WER at 8 counters 0.143 against 0.130 with
    ffmpeg 9's; decoding with either gives the same words)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48_000, layout="mono")
        stream.bit_rate = 32_000
        stream.codec_context.options = {"frame_duration": "20"}
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        frame = av.AudioFrame.from_ndarray(pcm.astype(np.int16)[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def pieces_of(data: bytes, duration_s: float, timeslice_s: float = TIMESLICE_S) -> list[bytes]:
    """Raw PCM in equal pieces of `timeslice_s` (bytes are time for PCM)."""
    count = max(1, round(duration_s / timeslice_s))
    size = -(-len(data) // count)
    return [data[i : i + size] for i in range(0, len(data), size)]


_SEGMENT, _CLUSTER, _TIMECODE, _SIMPLE_BLOCK, _BLOCK_GROUP = 0x18538067, 0x1F43B675, 0xE7, 0xA3, 0xA0


def _vint(data: bytes, pos: int, keep_marker: bool = False) -> tuple[int, int]:
    """An EBML variable-length integer at `pos`: (value, length in bytes)."""
    first, length, mask = data[pos], 1, 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    value = first if keep_marker else first & (mask - 1)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    return value, length


def webm_pieces(data: bytes, timeslice_s: float = TIMESLICE_S, frame_s: float = 0.02) -> list[bytes]:
    """A WebM file cut as MediaRecorder hands it over: every `timeslice_s`, the blocks whose audio has
    been captured by then (whole blocks; the header goes with the first piece, anything after the
    last block with the last piece).

    Cutting the bytes into equal pieces instead does not follow time: Opus spends more bytes on speech
    than on pauses, so the end of a sentence would reach the server up to a few hundred ms late.
    """
    cuts: list[tuple[float, int]] = []  # (audio time at which a block is complete, byte offset after it)
    pos, cluster_ms = 0, 0
    while pos < len(data):
        element, id_len = _vint(data, pos, keep_marker=True)
        size, size_len = _vint(data, pos + id_len)
        body = pos + id_len + size_len
        if element in (_SEGMENT, _CLUSTER):  # masters whose children are walked in place
            pos = body
            continue
        if element == _TIMECODE:
            cluster_ms = int.from_bytes(data[body : body + size], "big")
        elif element in (_SIMPLE_BLOCK, _BLOCK_GROUP):
            block = body
            if element == _BLOCK_GROUP:  # its first child is the Block (0xA1)
                _, child_id_len = _vint(data, body, keep_marker=True)
                _, child_size_len = _vint(data, body + child_id_len)
                block = body + child_id_len + child_size_len
            _, track_len = _vint(data, block)
            relative = int.from_bytes(data[block + track_len : block + track_len + 2], "big", signed=True)
            cuts.append(((cluster_ms + relative) / 1000 + frame_s, body + size))
        pos = body + size
    pieces: list[bytes] = []
    start = ready = 0  # where the next piece starts; the end of the blocks complete so far
    for end_s, offset in cuts:
        while end_s > (len(pieces) + 1) * timeslice_s + 1e-6:
            pieces.append(data[start:ready])  # this slice's blocks (and the header, in the first)
            start = ready
        ready = offset
    pieces.append(data[start:])
    return pieces


async def run_stream(
    pieces: list[bytes], fmt: str, speed: float, cleaner: NoiseReduceCleaner | None, timeslice_s: float = TIMESLICE_S
) -> int:
    decoder = AutoDecoder(AudioFormat("auto"), container_decoder=FfmpegDecoder)
    detector, segmenter = WebRtcSpeechDetector(2), Segmenter()
    segments = 0

    async def consume() -> None:
        nonlocal segments
        carry = np.zeros(0, dtype=np.int16)
        async for chunk in decoder.chunks():
            pcm = np.concatenate([carry, chunk.samples]) if carry.size else chunk.samples
            usable = pcm.size - pcm.size % FRAME_SAMPLES
            carry = pcm[usable:]
            whole = pcm[:usable]
            voiced = [detector.is_voiced(whole[i : i + FRAME_SAMPLES]) for i in range(0, usable, FRAME_SAMPLES)]
            for seg in segmenter.push_many(whole, voiced, chunk.received_at):
                segments += 1
                if cleaner is not None:
                    cleaner.clean(seg.pcm)

    consumer = asyncio.create_task(consume())
    started = time.monotonic()
    interval = timeslice_s / speed if speed > 0 else 0.0
    for index, piece in enumerate(pieces):
        await decoder.write(piece, time.time())
        if interval:
            await asyncio.sleep(max(0.0, started + (index + 1) * interval - time.monotonic()))
    await decoder.finish()
    await consumer
    await decoder.aclose()
    return segments


async def measure(
    pieces: list[bytes],
    fmt: str,
    streams: int,
    speed: float,
    audio_s: float,
    clean: bool,
    timeslice_s: float = TIMESLICE_S,
) -> dict:
    cleaner = NoiseReduceCleaner() if clean else None
    gc.collect()
    before, wall = os.times(), time.monotonic()
    counts = await asyncio.gather(*(run_stream(pieces, fmt, speed, cleaner, timeslice_s) for _ in range(streams)))
    after, wall = os.times(), time.monotonic() - wall
    own = (after.user - before.user) + (after.system - before.system)
    children = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    total_audio = audio_s * streams
    return {
        "format": fmt,
        "cleaner_on_segments": clean,
        "streams": streams,
        "timeslice_ms": round(timeslice_s * 1000),
        "audio_s_per_stream": round(audio_s, 1),
        "speed": speed,
        "wall_s": round(wall, 1),
        "segments_per_stream": counts[0],
        "cpu_s_per_audio_s": round((own + children) / total_audio, 5),
        "python_cpu_s_per_audio_s": round(own / total_audio, 5),
        "ffmpeg_cpu_s_per_audio_s": round(children / total_audio, 5),
    }


async def memory_per_connection(webm: bytes, connections: int = 20) -> dict:
    """RSS growth of this process and the unique memory of each ffmpeg child, with N open streams
    that have sent their header and first audio and are waiting (an idle counter)."""
    me = psutil.Process()
    gc.collect()
    rss_before = me.memory_info().rss
    decoders = []
    for _ in range(connections):
        decoder = AutoDecoder(AudioFormat("auto"), container_decoder=FfmpegDecoder)
        await decoder.write(webm[:8000], time.time())
        decoders.append(decoder)
    await asyncio.sleep(1.0)
    gc.collect()
    rss_after = me.memory_info().rss
    children = [p for p in me.children() if "ffmpeg" in p.name()]
    uss = [p.memory_full_info().uss for p in children]
    rss = [p.memory_info().rss for p in children]
    for decoder in decoders:
        await decoder.aclose()
    pcm_decoders = []
    gc.collect()
    rss_pcm_before = me.memory_info().rss
    for _ in range(connections):
        decoder = AutoDecoder(AudioFormat("auto"), container_decoder=FfmpegDecoder)
        await decoder.write(np.zeros(4000, dtype=np.int16).tobytes(), time.time())
        pcm_decoders.append((decoder, WebRtcSpeechDetector(2), Segmenter()))
    gc.collect()
    rss_pcm_after = me.memory_info().rss
    for decoder, _, _ in pcm_decoders:
        await decoder.aclose()
    return {
        "connections": connections,
        "webm_python_rss_mb_per_connection": round((rss_after - rss_before) / connections / 1e6, 2),
        "webm_ffmpeg_uss_mb_per_child": round(float(np.mean(uss)) / 1e6, 1) if uss else None,
        "webm_ffmpeg_rss_mb_per_child": round(float(np.mean(rss)) / 1e6, 1) if rss else None,
        "pcm_python_rss_mb_per_connection": round((rss_pcm_after - rss_pcm_before) / connections / 1e6, 2),
        "pcm_ffmpeg_children": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--speed", type=float, default=4.0, help="x real time per stream; 0 = flat out")
    parser.add_argument("--formats", nargs="+", default=["webm", "pcm"])
    parser.add_argument("--cleaner", action="store_true", help="also measure cleaning each VAD segment")
    parser.add_argument(
        "--timeslice-ms", type=int, default=int(TIMESLICE_S * 1000), help="how often a stream hands over a piece"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    conversation = build_conversation(seed=11, duration_s=args.seconds)
    audio_s, timeslice_s = conversation.duration_s, args.timeslice_ms / 1000
    streams = {"pcm": pieces_of(conversation.pcm.astype("<i2").tobytes(), audio_s, timeslice_s)}
    if "webm" in args.formats:
        streams["webm"] = webm_pieces(encode_webm(conversation.pcm), timeslice_s)
    results = []
    for fmt in args.formats:
        for clean in [False, True] if args.cleaner else [False]:
            results.append(
                asyncio.run(measure(streams[fmt], fmt, args.streams, args.speed, audio_s, clean, timeslice_s))
            )
            print(json.dumps(results[-1]), flush=True)
    memory = asyncio.run(memory_per_connection(b"".join(streams["webm"])) if "webm" in streams else asyncio.sleep(0))
    report = {
        "machine": machine.describe(),
        "command": "python -m bench.frontend " + " ".join(os.sys.argv[1:]),
        "results": results,
        "memory": memory,
    }
    print()
    print(f"{'format':<6} {'cleaner':<8} {'streams':>7} {'CPU-s/audio-s':>14} {'python':>9} {'ffmpeg':>9}")
    for r in results:
        print(
            f"{r['format']:<6} {'on' if r['cleaner_on_segments'] else 'off':<8} {r['streams']:>7} "
            f"{r['cpu_s_per_audio_s']:>14.5f} {r['python_cpu_s_per_audio_s']:>9.5f} "
            f"{r['ffmpeg_cpu_s_per_audio_s']:>9.5f}"
        )
    if memory:
        print(json.dumps(memory))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
