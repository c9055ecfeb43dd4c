"""`balto wer`: how well a transcriber hears the committed fixtures and the shared real recordings, and
how much it invents on noise, so that a regression in either shows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from balto.evaluation import RATE, REPO_ROOT, read_manifest, read_wav, word_errors
from balto.ports.inference import Transcriber, TranscriptionError

FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
MARGIN_S = 0.25  # around each fixture utterance, as the VAD's pre-roll and hang-over would leave
NOISE_PIECE_S = 5.0


@dataclass(frozen=True)
class Clip:
    name: str
    pcm: np.ndarray
    reference: str  # "" for noise: every word heard is invented


@dataclass(frozen=True)
class Heard:
    clip: Clip
    text: str
    errors: int
    words: int
    latency_ms: float
    error: str | None = None


def fixture_clips(folder: Path = FIXTURES_DIR) -> list[Clip]:
    """Every utterance of the committed espeak-ng fixtures, cut as the VAD would."""
    manifest = json.loads((folder / "fixtures.json").read_text(encoding="utf-8"))
    clips = []
    for name, entry in manifest.items():
        pcm = read_wav(folder / name)
        for index, utterance in enumerate(entry["utterances"]):
            start = max(0, int((utterance["start_s"] - MARGIN_S) * RATE))
            end = int((utterance["end_s"] + MARGIN_S) * RATE)
            clips.append(Clip(f"{name}#{index + 1}", pcm[start:end], utterance["text"]))
    return clips


def transcribed_clips(folder: Path) -> list[Clip]:
    """The shared real Portuguese sentences with their transcripts (pt_transcribed/)."""
    return [Clip(row["file"], read_wav(folder / row["file"]), row["transcript"]) for row in read_manifest(folder)]


def noise_clips(folder: Path, piece_s: float = NOISE_PIECE_S) -> list[Clip]:
    """The shared noise recordings (noise/) in pieces the length of a long VAD segment."""
    clips = []
    step = int(piece_s * RATE)
    for row in read_manifest(folder):
        pcm = read_wav(folder / row["file"])
        for index, start in enumerate(range(0, pcm.size - RATE, step)):
            clips.append(Clip(f"{row['file']}#{index + 1}", pcm[start : start + step], ""))
    return clips


async def listen(transcriber: Transcriber, clips: list[Clip], language: str | None = "pt") -> list[Heard]:
    heard = []
    for clip in clips:
        started = time.perf_counter()
        try:
            text, error = (await transcriber.transcribe(clip.pcm, language)).text, None
        except TranscriptionError as exc:
            text, error = "", str(exc)
        errors, words = word_errors(clip.reference, text)
        heard.append(Heard(clip, text, errors, words, (time.perf_counter() - started) * 1000, error))
    return heard


def report(title: str, heard: list[Heard], echo: Callable[[str], None]) -> float | None:
    """Prints one line per clip and a summary; returns the corpus WER (None for noise)."""
    for h in heard:
        shown = f"ERROR {h.error}" if h.error else repr(h.text)
        score = f"{h.errors / h.words:5.2f}" if h.words else f"{h.errors:3d} w"
        echo(f"  {h.clip.name:28s} {score}  {h.latency_ms:6.0f} ms  {shown}")
    errors, words = sum(h.errors for h in heard), sum(h.words for h in heard)
    if words == 0:
        echo(f"{title}: {errors} words invented on {len(heard)} pieces of noise")
        return None
    rate = errors / words
    echo(f"{title}: WER {rate:.3f} ({errors} errors / {words} words, {len(heard)} clips)")
    return rate
