"""Choosing the segmenter's timing: pre-roll, hang-over and minimum segment, by WER and segment count.

    .venv/bin/python -m bench.vad_params [--snr 20] [--seeds 1 2]

The hang-over is paid on every sentence as latency (a segment closes that long after the last
word), so it should be as short as the WER allows; the pre-roll keeps first syllables; the minimum
drops clicks without dropping "sim" or "não". The pause gate (`VAD_PAUSE_GATE_MS`: after 120 ms
of silence, a frame ends the pause only if Silero, streamed over the recording, hears a voice too)
is compared with the default, which runs without it here as everywhere a speech model is not given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from balto.adapters.faster_whisper import load_whisper_model
from balto.adapters.silero_gate import load_silero_gate
from balto.domain.vad import SegmenterConfig
from balto.evaluation import word_errors
from bench.audio import build_conversation
from bench.cleaner import coverage, transcribe
from bench.pauses import run_gate

PAUSE_GATE = "pause gate (120 ms, Silero 0.05)"

VARIANTS = {
    "default (240/450/240)": SegmenterConfig(),
    "hang-over 300": SegmenterConfig(hang_over_ms=300),
    "hang-over 600": SegmenterConfig(hang_over_ms=600),
    "hang-over 800": SegmenterConfig(hang_over_ms=800),
    "pre-roll 90": SegmenterConfig(pre_roll_ms=90),
    "pre-roll 480": SegmenterConfig(pre_roll_ms=480),
    "min speech 120": SegmenterConfig(min_speech_ms=120),
    PAUSE_GATE: SegmenterConfig(),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snr", type=float, default=20.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    model = load_whisper_model("base", Path.home() / ".cache" / "balto" / "models", "int8", 2)
    gate = load_silero_gate() if PAUSE_GATE in args.variants else None
    rows = []
    for name in args.variants:
        config = VARIANTS[name]
        errors = words = segments = covered = false = utterances = 0
        for seed in args.seeds:
            conv = build_conversation(seed=seed, snr_db=args.snr)
            stream = gate.stream() if gate is not None and name == PAUSE_GATE else None
            found = run_gate(conv.pcm, conv.spans, config, stream, 0.05)["segments"]
            e, w = word_errors(conv.text, " ".join(transcribe(model, s.pcm) for s in found))
            c, f = coverage(found, conv.spans)
            errors, words, segments, covered, false = (
                errors + e,
                words + w,
                segments + len(found),
                covered + c,
                false + f,
            )
            utterances += len(conv.spans)
        row = {
            "variant": name,
            "wer": round(errors / words, 3),
            "segments": segments,
            "utterances": utterances,
            "covered": covered,
            "false_segments": false,
            "close_delay_ms": config.hang_over_ms,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
