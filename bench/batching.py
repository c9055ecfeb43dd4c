"""Would decoding segments from several counters as one batch pay on this CPU?

    .venv/bin/python -m bench.batching [--window 15] [--batches 1 2 4 8] [--segments 8]

Takes real sentences (../shared/audio, else the committed fixtures), computes Whisper's features the
way the server does (padded to the encoder window, STT_WINDOW_S), and runs CTranslate2's encoder and
beam-5 decoder on them `B` at a time, as faster-whisper's batched pipeline does. Prints CPU-seconds and
wall-seconds per segment for each batch size, and the first transcript as a sanity check. A batch's
segments all wait for the whole batch, so wall time per segment is the throughput, not the latency.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ctranslate2
import numpy as np
from faster_whisper.tokenizer import Tokenizer

from balto.adapters.faster_whisper import load_whisper_model
from bench.audio import utterances
from bench.machine import cpu_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=15.0, help="encoder window, seconds")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = load_whisper_model("base", Path.home() / ".cache" / "balto" / "models", "int8", args.threads)
    frames = int(args.window * 100)  # 10 ms mel frames
    tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="pt")
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

    def features(pcm: np.ndarray) -> np.ndarray:
        mel = model.feature_extractor(pcm.astype(np.float32) / 32768.0)
        return mel[:, :frames] if mel.shape[1] >= frames else np.pad(mel, ((0, 0), (0, frames - mel.shape[1])))

    batch_of = [features(pcm) for pcm, _ in utterances("auto")[: args.segments]]

    def decode(batch: list[np.ndarray]) -> list[str]:
        encoded = model.model.encode(ctranslate2.StorageView.from_array(np.stack(batch)), to_cpu=False)
        results = model.model.generate(encoded, [prompt] * len(batch), beam_size=5, max_length=120)
        return [model.hf_tokenizer.decode([t for t in r.sequences_ids[0] if t < tokenizer.eot]) for r in results]

    decode(batch_of[:1])  # warm-up
    for size in args.batches:
        cpu_before, wall_before = cpu_s(), time.perf_counter()
        texts: list[str] = []
        for i in range(0, len(batch_of), size):
            texts += decode(batch_of[i : i + size])
        n = len(batch_of)
        print(
            f"batch {size}: {(cpu_s() - cpu_before) / n:.3f} CPU-s and {(time.perf_counter() - wall_before) / n:.3f}"
            f" wall-s per segment ({n} segments, {args.window:g} s window); first: {texts[0][:60]!r}",
            flush=True,
        )


if __name__ == "__main__":
    main()
