"""Does packing segments into one Whisper window keep the accuracy, and what does it save?

    .venv/bin/python -m bench.packing [--groups 1 2 4 6] [--seeds 1 2] [--snr 20] [--windows 30 20]
        [--beams 5] [--threads 1] [--blas-threads 1|0] [--vocabularies full pt]

Cuts real counter-like conversations with the production VAD, then transcribes the segments with
the production WhisperTranscriber, `k` at a time (as if k counters finished a sentence at once):
k = 1 is one window per segment; k > 1 goes through the packing queue. Prints WER against the
conversations' transcripts and CPU-seconds per segment. `--windows` also compares encoder windows
shorter than Whisper's 30 s (STT_WINDOW_S), `--beams` beam sizes, `--threads` threads per decode
(STT_CPU_THREADS), `--blas-threads 0` numpy's BLAS left on every core (the server limits it to one) and
`--vocabularies` Whisper's whole vocabulary against the decoder over Portuguese tokens (STT_VOCABULARY).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model, resolve_model_path
from balto.adapters.whisper_vocabulary import load_restricted_whisper
from balto.app.container import single_thread_blas
from balto.evaluation import word_errors
from bench.audio import build_conversation
from bench.cleaner import segment
from bench.machine import cpu_s


async def transcribe_all(transcriber: WhisperTranscriber, pcms: list, k: int) -> list[str]:
    texts: list[str] = []
    for i in range(0, len(pcms), k):
        group = pcms[i : i + k]
        results = await asyncio.gather(*(transcriber.transcribe(p, "pt") for p in group))
        texts += [r.text for r in results]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4, 6])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--snr", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1, help="threads per decode (STT_CPU_THREADS)")
    parser.add_argument("--beams", type=int, nargs="+", default=[1], help="beam sizes to compare (STT_BEAM_SIZE)")
    parser.add_argument(
        "--windows", type=float, nargs="+", default=[30.0], help="encoder windows to compare, seconds (STT_WINDOW_S)"
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        choices=(0, 1),
        help="1: numpy's BLAS on one thread, as the server; 0: its default",
    )
    parser.add_argument(
        "--vocabularies",
        nargs="+",
        default=["full"],
        choices=("full", "pt"),
        help="full: Whisper's whole vocabulary; pt: the decoder over Portuguese tokens (STT_VOCABULARY=auto)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.blas_threads == 1:
        single_thread_blas()  # as the server runs
    cache = Path.home() / ".cache" / "balto" / "models"
    model = load_whisper_model("base", cache, "int8", args.threads)
    restricted = (
        load_restricted_whisper(Path(resolve_model_path("base", cache)), cache, "pt", "int8", args.threads)
        if "pt" in args.vocabularies
        else None
    )
    conversations = [build_conversation(seed=s, snr_db=args.snr) for s in args.seeds]
    cut = [[s.pcm for s in segment(c.pcm)] for c in conversations]
    rows = []
    runs = [(b, w, k, v) for v in args.vocabularies for b in args.beams for w in args.windows for k in args.groups]
    for beam, window_s, k, vocabulary in runs:
        executor = ThreadPoolExecutor(1)
        transcriber = WhisperTranscriber(
            model,
            executor,
            language="pt",
            pack=k > 1,
            window_s=window_s,
            beam_size=beam,
            restricted=restricted if vocabulary == "pt" else None,
        )
        errors = words = segments = empty = 0
        started = cpu_s()
        for conversation, pcms in zip(conversations, cut, strict=True):
            texts = asyncio.run(transcribe_all(transcriber, pcms, k))
            e, w = word_errors(conversation.text, " ".join(texts))
            errors, words, segments = errors + e, words + w, segments + len(pcms)
            empty += sum(1 for t in texts if not t.strip())
        spent = cpu_s() - started
        executor.shutdown()
        row = {
            "vocabulary": vocabulary,
            "beam_size": beam,
            "window_s": window_s,
            "segments_per_window": k,
            "wer": round(errors / words, 3),
            "cpu_s_per_segment": round(spent / segments, 3),
            "windows": transcriber.windows if k > 1 else segments,
            "segments": segments,
            "empty": empty,  # segments that came back with no words (speech lost, or noise rightly dropped)
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
