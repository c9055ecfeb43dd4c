"""Audio helpers for tests: synthetic signals, fixture loading, the shared real recordings."""

from __future__ import annotations

import json

import numpy as np
from bench.audio import (
    FIXTURES,
    RATE,
    mix_at_snr,
    pink_noise,
    read_manifest,
    read_wav,
    real_audio_dir,
    silence,
    write_wav,
)

__all__ = [
    "FIXTURES",
    "RATE",
    "fixture_manifest",
    "mix_at_snr",
    "pink_noise",
    "read_manifest",
    "read_wav",
    "real_audio_dir",
    "silence",
    "syllables",
    "write_wav",
]


def fixture_manifest() -> dict[str, dict]:
    return json.loads((FIXTURES / "fixtures.json").read_text())


def syllables(seconds: float, amplitude: float = 6000.0, pitch_hz: float = 180.0) -> np.ndarray:
    """A voiced-like burst: a harmonic tone whose loudness rises and falls four times a second."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * pitch_hz * k * t) / k for k in (1, 2, 3))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    return (amplitude * 0.6 * tone * envelope).astype(np.int16)
