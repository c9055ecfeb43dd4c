"""Encodings of a 16 kHz mono PCM signal as a counter would send it, made with the bundled ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soxr

from balto.adapters.ffmpeg import ffmpeg_exe
from tests.support.audio import write_wav


def ffmpeg_encode(pcm: np.ndarray, workdir: Path, name: str, *args: str) -> bytes:
    source = write_wav(workdir / f"{name}-src.wav", pcm)
    target = workdir / name
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), *args, str(target)],
        check=True,
    )
    return target.read_bytes()


def webm_opus(pcm: np.ndarray, workdir: Path) -> bytes:
    # What Chrome's MediaRecorder produces: Opus at 48 kHz in WebM, 20 ms frames.
    return ffmpeg_encode(pcm, workdir, "a.webm", "-ar", "48000", "-c:a", "libopus", "-b:a", "48k", "-f", "webm")


def ogg_opus(pcm: np.ndarray, workdir: Path) -> bytes:
    return ffmpeg_encode(pcm, workdir, "a.ogg", "-ar", "48000", "-c:a", "libopus", "-b:a", "48k", "-f", "ogg")


def wav_float(pcm: np.ndarray, workdir: Path) -> bytes:
    return ffmpeg_encode(pcm, workdir, "f.wav", "-c:a", "pcm_f32le", "-f", "wav")


def wav_pcm16(pcm: np.ndarray) -> bytes:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(pcm.astype("<i2").tobytes())
    return buffer.getvalue()


def pcm_48k_stereo(pcm: np.ndarray) -> bytes:
    up = soxr.resample(pcm.astype(np.float32), 16_000, 48_000)
    stereo = np.stack([up, up * 0.9], axis=1)
    return np.clip(np.round(stereo), -32768, 32767).astype("<i2").tobytes()


def chunks_of(data: bytes, duration_s: float, chunk_s: float) -> list[bytes]:
    """Cut an encoded stream into pieces of about `chunk_s` seconds each, as MediaRecorder timeslices do."""
    count = max(1, round(duration_s / chunk_s))
    size = max(1, -(-len(data) // count))
    return [data[i : i + size] for i in range(0, len(data), size)]
