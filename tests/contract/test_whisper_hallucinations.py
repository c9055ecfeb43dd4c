"""Local Whisper emits nothing on noise and music, and still hears real speech (the real model)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from balto.evaluation import wer
from tests.support.audio import FIXTURES, RATE, read_manifest, read_wav, real_audio_dir

pytestmark = pytest.mark.slow


def white_noise(seconds: float, rms: float = 3000.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal(int(seconds * RATE)) * rms, -32768, 32767).astype(np.int16)


def pink_noise(seconds: float, rms: float = 3000.0, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))  # 1/f power
    signal = np.fft.irfft(spectrum, n)
    return np.clip(signal / signal.std() * rms, -32768, 32767).astype(np.int16)


def chords(seconds: float) -> np.ndarray:
    """Plucked major/minor triads with harmonics, two beats each: music, not speech. On this input
    plain Whisper base loops "Eu não sei o que é o que é ..." until its token limit."""
    t = np.arange(int(seconds * RATE)) / RATE
    progression = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)]
    out = np.zeros_like(t)
    beat = 0.5
    for i in range(int(seconds / beat)):
        span = slice(int(i * beat * RATE), int((i + 1) * beat * RATE))
        local = t[span] - i * beat
        envelope = np.exp(-3 * local)
        for f in progression[(i // 2) % 4]:
            out[span] += envelope * sum(np.sin(2 * np.pi * f * k * local) / k**1.5 for k in (1, 2, 3, 4))
    return (out / np.abs(out).max() * 8000).astype(np.int16)


@pytest.mark.parametrize(
    "make",
    [lambda: white_noise(3.0), lambda: pink_noise(3.0), lambda: chords(8.0)],
    ids=["white-noise", "pink-noise", "chords"],
)
async def test_synthetic_noise_and_music_produce_no_text(whisper, make, caplog):
    with caplog.at_level(logging.INFO, logger="balto.adapters.faster_whisper"):
        transcript = await whisper.transcribe(make(), "pt")
    assert transcript.text == ""
    assert transcript.provider == "whisper"
    # What was invented, if anything, was logged with its reason.
    assert all("suppressed" in r.getMessage() for r in caplog.records)


# Pieces of the shared real noise the size of VAD segments; city 2-7 s is where plain Whisper base
# loops "A gente vai ver o que é o que é ...", coffee-shop 0-5 s is babble and clatter.
REAL_NOISE = [("blanket_coffee-shop.wav", 0.0, 5.0), ("blanket_city.wav", 2.0, 5.0)]


@pytest.mark.parametrize(("name", "start", "seconds"), REAL_NOISE, ids=["cafe", "city-loop"])
async def test_real_cafe_and_street_noise_produce_no_text(whisper, name, start, seconds):
    root = real_audio_dir()
    if root is None:
        pytest.skip("../shared/audio (real noise recordings) is absent; set BALTO_REAL_AUDIO_DIR to run this")
    pcm = read_wav(root / "noise" / name)[int(start * RATE) : int((start + seconds) * RATE)]
    transcript = await whisper.transcribe(pcm, "pt")
    assert transcript.text == ""


async def test_a_clear_obrigado_is_kept(whisper):
    transcript = await whisper.transcribe(read_wav(FIXTURES / "obrigado.wav"), "pt")
    assert "obrigad" in transcript.text.lower()
    assert transcript.confidence is not None and 0 < transcript.confidence <= 1


async def test_real_speech_is_kept(whisper):
    root = real_audio_dir()
    if root is None:
        pytest.skip("../shared/audio (real Portuguese recordings) is absent; set BALTO_REAL_AUDIO_DIR to run this")
    folder = root / "pt_transcribed"
    row = read_manifest(folder)[2]  # "Hoje é fundamental encontrar a razão da existência humana"
    transcript = await whisper.transcribe(read_wav(folder / row["file"]), "pt")
    assert wer(row["transcript"], transcript.text) <= 0.2, transcript.text
