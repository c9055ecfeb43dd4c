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
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from balto.adapters.ffmpeg import FfmpegDecoder, ffmpeg_exe
from balto.adapters.noisereduce_cleaner import NoiseReduceCleaner
from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.app.decoding import AutoDecoder
from balto.domain.audio import AudioFormat
from balto.domain.vad import FRAME_SAMPLES, Segmenter
from bench.audio import build_conversation, write_wav

TIMESLICE_S = 0.25


def encode_webm(pcm: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src = write_wav(Path(tmp) / "in.wav", pcm)
        out = Path(tmp) / "out.webm"
        subprocess.run(
            [
                *(ffmpeg_exe(), "-v", "error", "-y", "-i", str(src), "-ar", "48000", "-c:a", "libopus"),
                *("-b:a", "32k", "-frame_duration", "20", "-f", "webm", str(out)),
            ],
            check=True,
        )
        return out.read_bytes()


def pieces_of(data: bytes, duration_s: float) -> list[bytes]:
    count = max(1, round(duration_s / TIMESLICE_S))
    size = -(-len(data) // count)
    return [data[i : i + size] for i in range(0, len(data), size)]


async def run_stream(pieces: list[bytes], fmt: str, speed: float, cleaner: NoiseReduceCleaner | None) -> int:
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
    interval = TIMESLICE_S / speed if speed > 0 else 0.0
    for index, piece in enumerate(pieces):
        await decoder.write(piece, time.time())
        if interval:
            await asyncio.sleep(max(0.0, started + (index + 1) * interval - time.monotonic()))
    await decoder.finish()
    await consumer
    await decoder.aclose()
    return segments


async def measure(pieces: list[bytes], fmt: str, streams: int, speed: float, audio_s: float, clean: bool) -> dict:
    cleaner = NoiseReduceCleaner() if clean else None
    gc.collect()
    before, wall = os.times(), time.monotonic()
    counts = await asyncio.gather(*(run_stream(pieces, fmt, speed, cleaner) for _ in range(streams)))
    after, wall = os.times(), time.monotonic() - wall
    own = (after.user - before.user) + (after.system - before.system)
    children = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    total_audio = audio_s * streams
    return {
        "format": fmt,
        "cleaner_on_segments": clean,
        "streams": streams,
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
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    conversation = build_conversation(seed=11, duration_s=args.seconds)
    audio_s = conversation.duration_s
    streams = {"pcm": pieces_of(conversation.pcm.astype("<i2").tobytes(), audio_s)}
    if "webm" in args.formats:
        streams["webm"] = pieces_of(encode_webm(conversation.pcm), audio_s)
    results = []
    for fmt in args.formats:
        for clean in [False, True] if args.cleaner else [False]:
            results.append(asyncio.run(measure(streams[fmt], fmt, args.streams, args.speed, audio_s, clean)))
            print(json.dumps(results[-1]), flush=True)
    memory = asyncio.run(memory_per_connection(b"".join(streams["webm"])) if "webm" in streams else asyncio.sleep(0))
    report = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
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
