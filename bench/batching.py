"""Would decoding segments from several counters as one batch pay on this CPU?

    .venv/bin/python -m bench.batching [--window 15] [--batches 1 2 4 8] [--segments 8] [--threads 2]
        [--compute-type int8] [--encoder-threads 0] [--encode-alone]

Takes real sentences (../shared/audio, else the committed fixtures), computes Whisper's features the
way the server does (padded to the encoder window, STT_WINDOW_S), and runs CTranslate2's encoder and
beam-5 decoder on them `B` at a time, as faster-whisper's batched pipeline does (and the server with
STT_BATCH). Prints CPU-seconds per segment for each batch size, the encoder's and the decoder's apart,
wall-seconds per segment (and the encoder's), and the first transcript as a sanity check. With
`--encoder-threads N` the encoder runs on a second instance of the model with N threads and the
decoder on `--threads` (an idea measured and not kept: docs/performance.md, "Tried before"). With
`--encode-alone` each segment goes through the encoder by itself and only the decoder sees the batch,
as the server does since item 18 (on Intel MKL the encoder costs more per segment in a batch). A
batch's segments all wait for the whole batch, so wall time per segment is the throughput, not the
latency.
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
    parser.add_argument("--compute-type", default="int8", help="CTranslate2's compute type (STT_COMPUTE_TYPE)")
    parser.add_argument(
        "--encoder-threads",
        type=int,
        default=0,
        help="run the encoder on a second instance of the model with this many threads; 0: the same",
    )
    parser.add_argument(
        "--encode-alone",
        action="store_true",
        help="encode each segment of a batch by itself; only the decoder runs the batch",
    )
    args = parser.parse_args()
    cache = Path.home() / ".cache" / "balto" / "models"
    model = load_whisper_model("base", cache, args.compute_type, args.threads)
    # A second instance of the same model for the encoder: one replica on more threads.
    encoder = (
        load_whisper_model("base", cache, args.compute_type, args.encoder_threads).model
        if args.encoder_threads
        else model.model
    )
    frames = int(args.window * 100)  # 10 ms mel frames
    tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="pt")
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

    def features(pcm: np.ndarray) -> np.ndarray:
        mel = model.feature_extractor(pcm.astype(np.float32) / 32768.0)
        return mel[:, :frames] if mel.shape[1] >= frames else np.pad(mel, ((0, 0), (0, frames - mel.shape[1])))

    pool = [features(pcm) for pcm, _ in utterances("auto")]
    batch_of = [pool[i % len(pool)] for i in range(args.segments)]  # the sentences again, if more are asked for

    stages = ("encoder", "encoder wall", "decoder")
    spent = dict.fromkeys(stages, 0.0)

    def decode(batch: list[np.ndarray]) -> list[str]:
        started, wall_started = cpu_s(), time.perf_counter()
        if args.encode_alone and len(batch) > 1:
            alone = [np.asarray(encoder.encode(ctranslate2.StorageView.from_array(f[None]))) for f in batch]
            encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(alone)))
        else:
            encoded = encoder.encode(ctranslate2.StorageView.from_array(np.stack(batch)), to_cpu=False)
        encoded_at = cpu_s()
        spent["encoder wall"] += time.perf_counter() - wall_started
        results = model.model.generate(encoded, [prompt] * len(batch), beam_size=5, max_length=120)
        spent["encoder"] += encoded_at - started
        spent["decoder"] += cpu_s() - encoded_at
        return [model.hf_tokenizer.decode([t for t in r.sequences_ids[0] if t < tokenizer.eot]) for r in results]

    decode(batch_of[:1])  # warm-up
    for size in args.batches:
        spent.update(dict.fromkeys(stages, 0.0))
        cpu_before, wall_before = cpu_s(), time.perf_counter()
        texts: list[str] = []
        n = len(batch_of) - len(batch_of) % size  # whole batches only
        for i in range(0, n, size):
            texts += decode(batch_of[i : i + size])
        print(
            f"batch {size}: {(cpu_s() - cpu_before) / n:.3f} CPU-s (encoder {spent['encoder'] / n:.3f} in"
            f" {spent['encoder wall'] / n:.3f} wall-s, decoder"
            f" {spent['decoder'] / n:.3f}) and {(time.perf_counter() - wall_before) / n:.3f} wall-s per segment"
            f" ({n} segments, {args.window:g} s window, {args.compute_type}); first: {texts[0][:60]!r}",
            flush=True,
        )


if __name__ == "__main__":
    main()
