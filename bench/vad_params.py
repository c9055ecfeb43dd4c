"""Choosing the segmenter's timing: pre-roll, hang-over and minimum segment, by WER and segment count.

    .venv/bin/python -m bench.vad_params [--snr 20] [--seeds 1 2]

The hang-over is paid on every sentence as latency (a segment closes that long after the last
word), so it should be as short as the WER allows; the pre-roll keeps first syllables; the minimum
drops clicks without dropping "sim" or "não".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from balto.adapters.faster_whisper import load_whisper_model
from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.domain.vad import FRAME_SAMPLES, Segmenter, SegmenterConfig
from balto.evaluation import word_errors
from bench.audio import RATE, build_conversation
from bench.cleaner import coverage, transcribe

VARIANTS = {
    "default (240/450/240)": SegmenterConfig(),
    "hang-over 300": SegmenterConfig(hang_over_ms=300),
    "hang-over 600": SegmenterConfig(hang_over_ms=600),
    "hang-over 800": SegmenterConfig(hang_over_ms=800),
    "pre-roll 90": SegmenterConfig(pre_roll_ms=90),
    "pre-roll 480": SegmenterConfig(pre_roll_ms=480),
    "min speech 120": SegmenterConfig(min_speech_ms=120),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snr", type=float, default=20.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = load_whisper_model("base", Path.home() / ".cache" / "balto" / "models", "int8", 2)
    rows = []
    for name, config in VARIANTS.items():
        errors = words = segments = covered = false = utterances = 0
        for seed in args.seeds:
            conv = build_conversation(seed=seed, snr_db=args.snr)
            detector, segmenter = WebRtcSpeechDetector(2), Segmenter(config=config)
            found = []
            for offset in range(0, conv.pcm.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
                frame = conv.pcm[offset : offset + FRAME_SAMPLES]
                seg = segmenter.push(frame, detector.is_voiced(frame), offset / RATE)
                if seg:
                    found.append(seg)
            if (tail := segmenter.flush()) is not None:
                found.append(tail)
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
