"""Would Whisper hear a VAD segment better with more around it?

    .venv/bin/python -m bench.segment_context [--seeds 1 2 3 4 5 6] [--variants none zeros300 before300 words10]

Cuts real counter-like conversations with the production VAD (as `bench.packing` does) and
transcribes every segment with the production WhisperTranscriber (10 s window, beam 5), given:

- `none`: the segment as the server hears it;
- `zerosN`: N ms of digital silence put before it;
- `beforeN`: N ms more of the recording before it (a longer pre-roll);
- `wordsN`: the last N words this conversation's earlier segments were heard as, as Whisper's prompt
  (what faster-whisper's `condition_on_previous_text` does across the windows of one file).

Prints the WER against the conversations' scripts and CPU-seconds per segment for each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model
from balto.app.container import single_thread_blas
from balto.evaluation import word_errors
from bench.audio import RATE, build_conversation
from bench.cleaner import segment
from bench.machine import cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--variants", nargs="+", default=["none", "zeros300", "before300", "words10", "words30"])
    parser.add_argument("--snr", type=float, default=20.0)
    args = parser.parse_args()
    single_thread_blas()  # as the server runs
    model = load_whisper_model("base", Path.home() / ".cache" / "balto" / "models", "int8", 1)
    prompt: dict[str, str | None] = {"text": None}
    transcribe = model.transcribe

    def with_prompt(audio: np.ndarray, **options: Any) -> Any:
        if prompt["text"]:
            options["initial_prompt"] = prompt["text"]
        return transcribe(audio, **options)

    model.transcribe = with_prompt  # type: ignore[method-assign]
    executor = ThreadPoolExecutor(1)
    transcriber = WhisperTranscriber(model, executor, language="pt", window_s=10.0, beam_size=5)
    conversations = [build_conversation(seed=s, snr_db=args.snr) for s in args.seeds]
    cuts = [segment(c.pcm) for c in conversations]
    for variant in args.variants:
        kind = variant.rstrip("0123456789")
        amount = int(variant[len(kind) :] or 0)
        errors = words = segments = 0
        started = cpu_s()
        for conversation, segs in zip(conversations, cuts, strict=True):
            heard: list[str] = []
            for seg in segs:
                pcm = seg.pcm
                start = round(seg.start_s * RATE)
                if kind == "zeros":
                    pcm = np.concatenate([np.zeros(amount * RATE // 1000, np.int16), pcm])
                elif kind == "before":
                    pcm = np.concatenate([conversation.pcm[max(0, start - amount * RATE // 1000) : start], pcm])
                prompt["text"] = (" ".join(" ".join(heard).split()[-amount:]) or None) if kind == "words" else None
                heard.append(asyncio.run(transcriber.transcribe(pcm, "pt")).text)
                segments += 1
            e, w = word_errors(conversation.text, " ".join(heard))
            errors, words = errors + e, words + w
        row = {
            "variant": variant,
            "wer": round(errors / words, 4),
            "errors": errors,
            "words": words,
            "cpu_s_per_segment": round((cpu_s() - started) / segments, 3),
        }
        print(json.dumps(row), flush=True)
    executor.shutdown()


if __name__ == "__main__":
    main()
