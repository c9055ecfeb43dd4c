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
    "counter_utterance",
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


def counter_utterance(index: int) -> tuple[np.ndarray, str]:
    """The `index`-th sentence of the counter fixture cut as the VAD cuts a segment (240 ms of
    pre-roll, a 120 ms tail), with what was said."""
    u = fixture_manifest()["balcao_pt.wav"]["utterances"][index]
    pcm = read_wav(FIXTURES / "balcao_pt.wav")
    return pcm[int((u["start_s"] - 0.24) * RATE) : int((u["end_s"] + 0.12) * RATE)], u["text"]


def syllables(seconds: float, amplitude: float = 6000.0, pitch_hz: float = 180.0) -> np.ndarray:
    """A voiced-like burst: a harmonic tone whose loudness rises and falls four times a second."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * pitch_hz * k * t) / k for k in (1, 2, 3))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    return (amplitude * 0.6 * tone * envelope).astype(np.int16)
