"""Audio helpers for tests: synthetic signals, fixture loading, the shared real recordings."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np

RATE = 16_000
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == RATE and wav.getnchannels() == 1 and wav.getsampwidth() == 2, path
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy()


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def fixture_manifest() -> dict[str, dict]:
    return json.loads((FIXTURES / "fixtures.json").read_text())


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def syllables(seconds: float, amplitude: float = 6000.0, pitch_hz: float = 180.0) -> np.ndarray:
    """A voiced-like burst: a harmonic tone whose loudness rises and falls four times a second."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * pitch_hz * k * t) / k for k in (1, 2, 3))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    return (amplitude * 0.6 * tone * envelope).astype(np.int16)


def real_audio_dir() -> Path | None:
    """`../shared/audio` (or BALTO_REAL_AUDIO_DIR): real recordings present on dev machines and CI only."""
    configured = os.environ.get("BALTO_REAL_AUDIO_DIR")
    path = Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "audio"
    return path if (path / "pt_transcribed" / "MANIFEST.tsv").exists() else None


def read_manifest(folder: Path) -> list[dict[str, str]]:
    lines = (folder / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line.strip()]


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add `noise` (looped, random offset) to `speech` so the speech-to-noise power ratio is `snr_db`.

    Speech power is measured over its voiced samples only, so long pauses do not inflate the noise.
    """
    speech_f = speech.astype(np.float64)
    reps = int(np.ceil(speech.size / noise.size)) + 1
    start = int(rng.integers(0, noise.size))
    looped = np.tile(noise.astype(np.float64), reps)[start : start + speech.size]
    active = np.abs(speech_f) > 0.02 * np.abs(speech_f).max()
    p_speech = np.mean(speech_f[active] ** 2)
    p_noise = np.mean(looped**2) or 1.0
    scaled = looped * np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    return np.clip(np.round(speech_f + scaled), -32768, 32767).astype(np.int16)
