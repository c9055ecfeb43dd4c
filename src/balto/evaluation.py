"""Word error rate (Portuguese-aware normalisation) and the evaluation audio it is measured on: the
committed fixtures and the shared real recordings, for `balto wer`, the tests and the benchmarks."""

from __future__ import annotations

import os
import re
import unicodedata
import wave
from pathlib import Path

import numpy as np

RATE = 16_000
REPO_ROOT = Path(__file__).resolve().parents[2]


def read_wav(path: Path) -> np.ndarray:
    """int16 samples of a 16 kHz mono 16-bit WAV file."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (RATE, 1, 2):
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit WAV")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy()


def real_audio_dir() -> Path | None:
    """BALTO_REAL_AUDIO_DIR, else ../shared/audio beside the repository: real recordings present on
    developer machines and CI, not in a user's clone."""
    configured = os.environ.get("BALTO_REAL_AUDIO_DIR")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "audio"
    return path if (path / "pt_transcribed" / "MANIFEST.tsv").exists() else None


def read_manifest(folder: Path) -> list[dict[str, str]]:
    """The rows of a shared-audio folder's MANIFEST.tsv."""
    lines = (folder / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line.strip()]


_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def normalize(text: str) -> list[str]:
    """Lower-case, drop punctuation, keep accents (they distinguish Portuguese words), split words."""
    text = unicodedata.normalize("NFC", text.lower()).replace("-", " ")
    return _PUNCTUATION.sub(" ", text).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, number of reference words)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row[0] = row[:], i
        for j, hyp_word in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
    return row[len(hyp)], len(ref)


def wer(reference: str, hypothesis: str) -> float:
    errors, words = word_errors(reference, hypothesis)
    return errors / max(words, 1)
