"""Counter-like audio for benchmarks and tests: the committed fixtures or the shared real recordings,
with pauses and background noise, seeded so runs compare."""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from balto.evaluation import RATE, read_manifest, read_wav, real_audio_dir

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def pink_noise(seconds: float, rng: np.random.Generator, rms: float = 1000.0) -> np.ndarray:
    """1/f noise by spectral shaping of white noise."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return np.clip(noise * rms / (np.sqrt(np.mean(noise**2)) or 1), -32768, 32767).astype(np.int16)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add `noise` (looped from a random offset) so the speech-to-noise power ratio is `snr_db`.

    Speech power is measured over its active samples only, so long pauses do not inflate the noise.
    """
    speech_f = speech.astype(np.float64)
    reps = int(np.ceil(speech.size / noise.size)) + 1
    start = int(rng.integers(0, noise.size))
    looped = np.tile(noise.astype(np.float64), reps)[start : start + speech.size]
    active = np.abs(speech_f) > 0.02 * (np.abs(speech_f).max() or 1)
    p_speech = np.mean(speech_f[active] ** 2) if active.any() else 1.0
    p_noise = np.mean(looped**2) or 1.0
    scaled = looped * np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    return np.clip(np.round(speech_f + scaled), -32768, 32767).astype(np.int16)


@dataclass
class Conversation:
    pcm: np.ndarray
    transcripts: list[str]
    spans: list[tuple[float, float]]  # start/end of each utterance, seconds

    @property
    def text(self) -> str:
        return " ".join(self.transcripts)

    @property
    def duration_s(self) -> float:
        return self.pcm.size / RATE


def utterances(source: str = "auto") -> list[tuple[np.ndarray, str]]:
    """(samples, transcript) pairs: the shared real sentences when present, else the committed fixtures."""
    audio = real_audio_dir() if source in ("auto", "real") else None
    if source == "real" and audio is None:
        raise FileNotFoundError("../shared/audio is not present (set BALTO_REAL_AUDIO_DIR)")
    if audio is not None:
        folder = audio / "pt_transcribed"
        return [(read_wav(folder / e["file"]), e["transcript"]) for e in read_manifest(folder)]
    manifest = json.loads((FIXTURES / "fixtures.json").read_text())
    out = []
    for name, entry in manifest.items():
        pcm = read_wav(FIXTURES / name)
        for u in entry["utterances"]:
            out.append((pcm[int(u["start_s"] * RATE) : int(u["end_s"] * RATE)], u["text"]))
    return out


def build_conversation(
    seed: int = 7,
    duration_s: float | None = None,
    source: str = "auto",
    noise: str | None = "blanket_coffee-shop.wav",
    snr_db: float | None = 20.0,
    pauses: tuple[float, float] = (1.0, 3.0),
    shuffle: bool = False,
    lead_s: float = 1.0,
) -> Conversation:
    """Utterances in order (or shuffled, with `shuffle`; repeated, shuffled after the first round,
    until `duration_s`), with
    random pauses and background noise: the shared recording `noise` when present, else pink noise.
    The first utterance starts after `lead_s` seconds of silence (noise)."""
    rng = np.random.default_rng(seed)
    pool = utterances(source)
    pieces = [silence(lead_s)]
    transcripts, spans = [], []
    cursor = pieces[0].size
    order = list(rng.permutation(len(pool))) if shuffle else list(range(len(pool)))
    while True:
        for index in order:
            speech, text = pool[index]
            spans.append((cursor / RATE, (cursor + speech.size) / RATE))
            transcripts.append(text)
            pause = silence(float(rng.uniform(*pauses)))
            pieces += [speech, pause]
            cursor += speech.size + pause.size
            if duration_s is not None and cursor / RATE >= duration_s:
                break
        if duration_s is None or cursor / RATE >= duration_s:
            break
        order = list(rng.permutation(len(pool)))
    pcm = np.concatenate(pieces)
    if snr_db is not None and noise is not None:
        audio = real_audio_dir()
        noise_pcm = read_wav(audio / "noise" / noise) if audio is not None else pink_noise(20.0, rng)
        pcm = mix_at_snr(pcm, noise_pcm, snr_db, rng)
    return Conversation(pcm, transcripts, spans)
