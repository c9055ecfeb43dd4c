"""Would cutting a segment down to the frames Silero calls speech (plus a margin) help Whisper?

    .venv/bin/python -m bench.gate_trim [--margin-ms 320] [--snr 20 10 5] [--seeds 1 2 3 4 5 6 7 8]

The same segments as bench.gate. Every segment the gate lets through (default policy) is transcribed
as the VAD cut it and, where it differs, trimmed to [first speech frame - margin, last speech frame +
margin]; prints the conversations' WER both ways. Measured, not adopted (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model
from balto.adapters.silero_gate import FRAME_MS, WINDOW
from balto.domain.vad import SpeechGatePolicy
from balto.evaluation import word_errors
from bench.audio import RATE
from bench.gate import cut_segments


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--margin-ms", type=float, default=320.0)
    parser.add_argument("--snr", type=float, nargs="+", default=[20.0, 10.0, 5.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    args = parser.parse_args()
    rows, references = cut_segments(args.snr, args.seeds)
    policy = SpeechGatePolicy()
    model = load_whisper_model("base", Path.home() / ".cache" / "balto" / "models", "int8", 2)
    transcriber = WhisperTranscriber(model, ThreadPoolExecutor(1), language="pt", window_s=15.0, beam_size=5)
    margin = int(args.margin_ms * RATE / 1000)
    changed = kept = 0
    for row in rows:
        row["as_cut"] = row["trimmed"] = ""
        if not policy.passes(row["probabilities"], FRAME_MS):
            continue
        kept += 1
        pcm = row["pcm"]
        speech = np.flatnonzero(row["probabilities"] >= policy.threshold)
        start = max(0, int(speech[0]) * WINDOW - margin)
        end = min(pcm.size, (int(speech[-1]) + 1) * WINDOW + margin)
        row["as_cut"] = asyncio.run(transcriber.transcribe(pcm, "pt")).text
        if start > 0 or end < pcm.size:
            changed += 1
            row["trimmed"] = asyncio.run(transcriber.transcribe(pcm[start:end], "pt")).text
        else:
            row["trimmed"] = row["as_cut"]
    print(f"{changed} of the {kept} segments the gate lets through trimmed")
    for key in ("as_cut", "trimmed"):
        wer = {}
        for snr in args.snr:
            errors = words = 0
            for seed in args.seeds:
                said = " ".join(r[key] for r in rows if r["snr"] == snr and r["seed"] == seed and r[key])
                e, w = word_errors(references[f"{snr}-{seed}"], said)
                errors, words = errors + e, words + w
            wer[f"{snr:g} dB"] = round(errors / words, 4)
        print(f"{key}: WER {wer}", flush=True)


if __name__ == "__main__":
    main()
