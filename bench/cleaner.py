"""Where should the AudioCleaner (noisereduce) run? Measures CPU cost, VAD decisions and WER.

    .venv/bin/python -m bench.cleaner [--snr 20 10 5] [--source auto|real|fixtures]

Variants, on the same counter-like conversation (speech with pauses plus cafe noise):
  off        no cleaning
  chunks     every 250 ms chunk cleaned before the VAD (what a naive front-end does)
  segments   the VAD runs on the raw audio; only the segments it hands on are cleaned for Whisper
For each: cleaning CPU-seconds per audio-second, segments cut, how many true utterances they cover,
false segments (no utterance inside), and the WER of local Whisper over the segments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model
from balto.adapters.noisereduce_cleaner import NoiseReduceCleaner
from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.domain.vad import FRAME_SAMPLES, Segmenter, SpeechSegment
from balto.evaluation import word_errors
from bench.audio import RATE, build_conversation

CHUNK = RATE // 4


def segment(pcm: np.ndarray) -> list[SpeechSegment]:
    detector, segmenter = WebRtcSpeechDetector(2), Segmenter()
    out = []
    for offset in range(0, pcm.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = pcm[offset : offset + FRAME_SAMPLES]
        seg = segmenter.push(frame, detector.is_voiced(frame), offset / RATE)
        if seg:
            out.append(seg)
    last = segmenter.flush()
    return [*out, last] if last else out


def coverage(segments: list[SpeechSegment], spans: list[tuple[float, float]]) -> tuple[int, int]:
    covered = sum(any(s.start_s < end and s.end_s > start for s in segments) for start, end in spans)
    false = sum(not any(s.start_s < end and s.end_s > start for start, end in spans) for s in segments)
    return covered, false


_EXECUTOR = ThreadPoolExecutor(1)


def transcribe(model, pcm: np.ndarray) -> str:
    """Exactly what the server does with a segment: the production adapter, its hallucination rules included."""
    return asyncio.run(WhisperTranscriber(model, _EXECUTOR, language="pt").transcribe(pcm)).text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snr", type=float, nargs="+", default=[20.0, 10.0, 5.0])
    parser.add_argument("--source", default="auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3])
    parser.add_argument("--noise", nargs="+", default=["blanket_coffee-shop.wav"])
    parser.add_argument("--variants", nargs="+", default=["off", "chunks", "segments"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = load_whisper_model("base", Path.home() / ".cache" / "balto" / "models", "int8", 2)
    cleaner = NoiseReduceCleaner()
    results = []
    cases = [(snr, seed, noise) for noise in args.noise for seed in args.seeds for snr in args.snr]
    for snr, seed, noise in cases:
        conv = build_conversation(seed=seed, source=args.source, snr_db=snr, noise=noise)
        raw = conv.pcm
        for variant in args.variants:
            started = time.process_time()
            if variant == "chunks":
                vad_input = np.concatenate([cleaner.clean(raw[i : i + CHUNK]) for i in range(0, raw.size, CHUNK)])
            else:
                vad_input = raw
            clean_cpu = time.process_time() - started
            segments = segment(vad_input)
            texts = []
            for seg in segments:
                pcm = vad_input[int(seg.start_s * RATE) : int(seg.end_s * RATE)]
                if variant == "segments":
                    t0 = time.process_time()
                    pcm = cleaner.clean(pcm)
                    clean_cpu += time.process_time() - t0
                texts.append(transcribe(model, pcm))
            errors, words = word_errors(conv.text, " ".join(texts))
            covered, false = coverage(segments, conv.spans)
            row = {
                "noise": noise,
                "seed": seed,
                "snr_db": snr,
                "errors": errors,
                "words": words,
                "variant": variant,
                "clean_cpu_per_audio_s": round(clean_cpu / conv.duration_s, 5),
                "segments": len(segments),
                "utterances_covered": f"{covered}/{len(conv.spans)}",
                "false_segments": false,
                "wer": round(errors / words, 3),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    print("\nvariant      snr   WER (pooled over seeds and noises)   clean CPU-s/audio-s")
    for variant in args.variants:
        for snr in args.snr:
            rows = [r for r in results if r["variant"] == variant and r["snr_db"] == snr]
            pooled = sum(r["errors"] for r in rows) / sum(r["words"] for r in rows)
            cpu = sum(r["clean_cpu_per_audio_s"] for r in rows) / len(rows)
            print(f"{variant:<10} {snr:>5.0f}   {pooled:.3f}                                {cpu:.4f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
