"""Counter-like conversations built from the shared real recordings (seeded, so runs compare)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support.audio import RATE, mix_at_snr, read_manifest, read_wav, silence


@dataclass
class Conversation:
    pcm: np.ndarray
    transcripts: list[str]
    spans: list[tuple[float, float]]  # start/end of each utterance, seconds

    @property
    def text(self) -> str:
        return " ".join(self.transcripts)


def build_conversation(
    audio_dir: Path,
    seed: int = 7,
    noise: str | None = "blanket_coffee-shop.wav",
    snr_db: float = 20.0,
    pauses: tuple[float, float] = (1.0, 3.0),
) -> Conversation:
    rng = np.random.default_rng(seed)
    folder = audio_dir / "pt_transcribed"
    pieces = [silence(1.0)]
    transcripts, spans = [], []
    cursor = pieces[0].size
    for entry in read_manifest(folder):
        speech = read_wav(folder / entry["file"])
        spans.append((cursor / RATE, (cursor + speech.size) / RATE))
        transcripts.append(entry["transcript"])
        pause = silence(float(rng.uniform(*pauses)))
        pieces += [speech, pause]
        cursor += speech.size + pause.size
    pcm = np.concatenate(pieces)
    if noise is not None:
        pcm = mix_at_snr(pcm, read_wav(audio_dir / "noise" / noise), snr_db, rng)
    return Conversation(pcm, transcripts, spans)
