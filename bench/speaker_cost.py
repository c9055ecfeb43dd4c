"""What the speaker path costs per segment: the noise cleaning, then the voice embedding.

    .venv/bin/python -m bench.speaker_cost [--rounds 10] [--source auto|real|fixtures] [--main-thread]

The sentences of `bench.audio.utterances` (the shared recordings, 3.6 s on average, or the committed
fixtures' without them), each cleaned (`NoiseReduceCleaner`) and embedded (Resemblyzer) the way the
server's speaker thread does it: in a worker thread of its own, one BLAS and one torch thread (or in
the main thread, `--main-thread`, to compare). Prints CPU milliseconds and minor page faults per
segment for each step, the median of `--rounds` rounds over all the sentences.

The page faults say which regime a run was in. noisereduce's buffers are ~2 MB each, and whether
glibc hands them back to the kernel after each call (and the next call faults them in again, a
kernel-zeroed page at a time) depends on the history of that thread's heap: the same cleaning
measured 11.6-16.3 ms with 1 to 2,062 faults per segment from one run to the next here, and 21.5-22.4
ms with ~1,800 in the main thread against 13.7-14.5 with none once glibc keeps its heaps
(docs/performance.md, "Tried before, and not kept": glibc's heaps kept). In the server the
speaker thread settles with next to no faults (1.5 a second at 12 counters, `bench.threadcpu`), so
a run here with thousands times a cost the server does not pay. To compare two checkouts, run it
from each in turn, interleaved, more than once, and compare runs whose faults agree.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.audio import utterances


def _per_segment(step: Callable[[np.ndarray], object], pcms: list[np.ndarray]) -> tuple[float, float]:
    """CPU milliseconds and minor page faults per segment, in the calling thread."""
    faults, start = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt, time.thread_time()
    for pcm in pcms:
        step(pcm)
    spent = time.thread_time() - start
    return spent * 1000 / len(pcms), (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults) / len(pcms)


def measure(rounds: int, source: str, main_thread: bool = False) -> dict[str, float]:
    import threadpoolctl

    from balto.adapters.noisereduce_cleaner import NoiseReduceCleaner
    from balto.adapters.resemblyzer import load_resemblyzer

    pcms = [pcm for pcm, _ in utterances(source)]

    def in_thread() -> dict[str, float]:
        threadpoolctl.threadpool_limits(1)
        cleaner, embedder = NoiseReduceCleaner(), load_resemblyzer(threads=1)
        steps = {"clean": cleaner.clean, "embed": embedder.embed}
        for step in steps.values():
            step(pcms[0])  # the first call pays for imports and kernel choices
        times: dict[str, list[float]] = {name: [] for name in steps}
        faults: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(rounds):
            for name, step in steps.items():
                ms, faulted = _per_segment(step, pcms)
                times[name].append(ms)
                faults[name].append(faulted)
        result = {name: statistics.median(values) for name, values in times.items()}
        result |= {f"{name}_faults": statistics.median(values) for name, values in faults.items()}
        result["segments"] = len(pcms)
        result["seconds_per_segment"] = sum(p.size for p in pcms) / len(pcms) / 16_000
        return result

    if main_thread:
        return in_thread()
    with ThreadPoolExecutor(1, thread_name_prefix="speaker") as pool:
        return pool.submit(in_thread).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="rounds over all the sentences (median kept)")
    parser.add_argument("--source", default="auto", choices=["auto", "real", "fixtures"])
    parser.add_argument("--main-thread", action="store_true", help="time it in the main thread instead (to compare)")
    args = parser.parse_args()
    result = measure(args.rounds, args.source, args.main_thread)
    print(
        f"{int(result['segments'])} segments of {result['seconds_per_segment']:.2f} s on average, "
        f"{'the main thread' if args.main_thread else 'one worker thread'}: "
        f"clean {result['clean']:.1f} ms ({result['clean_faults']:.0f} page faults), "
        f"embed {result['embed']:.1f} ms ({result['embed_faults']:.0f} page faults) per segment "
        f"(median of {args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
