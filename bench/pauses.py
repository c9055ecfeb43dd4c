"""Pauses inside a segment: how many early hearings speech, or noise, would throw away.

    .venv/bin/python -m bench.pauses [--counters 8] [--seconds 180] [--thresholds 0.05 0.1]

The VAD closes a segment after `hang_over_ms` (450) of silence, and a segment can be heard early,
during that silence (`VAD_EARLY_START_MS`); a pause broken before the hang-over ends throws such a
hearing away. This runs the production segmenter (webrtcvad, the energy gate) over the load
benchmark's own recordings (`bench.server`: the same seeds, real sentences when present, pauses of
0.5-8 s, cafe noise at 20 dB) in 90 ms pieces, as the server does, and counts, for each start time,
the segments that close (each is one hearing kept) and the pauses broken before the close (each is
one hearing thrown away).

Then the pause gate (`VAD_PAUSE_GATE_MS`, item 25 in docs/performance.md): with Silero streamed
over each recording (`SileroSpeechStream`, the server's), a frame that would end a pause of 120 ms
or more must be heard as speech by the model too. For the gate off and for each threshold, it
counts the pauses broken by speech (the frame lies within one of the generator's sentences) and by
noise (it does not), the segments that end inside a sentence (cut, more than 0.2 s before the
sentence's end), how long after each sentence's end its segment closes (the delay the hang-over and
any noise kept open add before a transcript can go out), and Silero's CPU per audio-second (the
process's, with the model called in half-second batches as the server's session calls it). Without
`--thresholds`, no model is needed: seconds on one core.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.app.session import StreamFeed
from balto.domain.vad import FRAME_MS, FRAME_SAMPLES, Segmenter, SegmenterConfig
from bench.server import counter_conversation

STARTS_MS = (120, 150, 180, 210, 240, 270, 300, 330, 360, 390, 420)
PIECE_FRAMES = 3  # 90 ms: what a 100 ms WebM piece decodes to, about


def run_gate(
    pcm: np.ndarray, spans: list[tuple[float, float]], config: SegmenterConfig, stream: Any, threshold: float
) -> dict[str, Any]:
    """The segmenter over one recording in pieces, with the pause gate when `stream` is given: the
    segments closed, each broken pause (its length in ms, and whether a sentence broke it), the
    segments cut inside a sentence, each sentence's close delay (s), the stream's CPU seconds, and
    the segments themselves (the one open at the end included)."""
    detector, segmenter = WebRtcSpeechDetector(2), Segmenter(config=config)
    feed = StreamFeed(stream, threshold) if stream is not None else None
    closed, cut, broken, delays, cpu, segments = 0, 0, [], [], 0.0, []
    seen: set[int] = set()
    previous, frame_index = 0, 0
    piece = PIECE_FRAMES * FRAME_SAMPLES
    for offset in range(0, pcm.size - piece + 1, piece):
        whole = pcm[offset : offset + piece]
        voiced = [detector.is_voiced(whole[i : i + FRAME_SAMPLES]) for i in range(0, piece, FRAME_SAMPLES)]
        heard = None
        if feed is not None:  # as the server's session does: the model's thread works while this one waits
            began = time.process_time()
            needed = segmenter.needs_heard(voiced)
            first = feed.push(whole, now=needed)
            heard = feed.heard(first, len(voiced)) if needed else None
            cpu += time.process_time() - began
        for i in range(PIECE_FRAMES):
            at_s = (frame_index + 0.5) * FRAME_MS / 1000
            frame_index += 1
            segment = segmenter.push(
                whole[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES], voiced[i], 0.0, heard[i] if heard else True
            )
            if segment is not None:
                closed += 1
                segments.append(segment)
                if any(a + 0.05 < segment.speech_end_s < b - 0.2 for a, b in spans):
                    cut += 1
                for index, (_, end) in enumerate(spans):
                    if index not in seen and segment.start_s <= end <= segment.end_s + 0.05:
                        seen.add(index)
                        delays.append(frame_index * FRAME_MS / 1000 - end)
            elif segmenter.in_speech and previous and not segmenter.trailing_silence_ms:
                broken.append((previous, any(a - 0.05 <= at_s <= b + 0.05 for a, b in spans)))
            previous = segmenter.trailing_silence_ms
    if (last := segmenter.flush()) is not None:
        segments.append(last)
    return {"closed": closed, "broken": broken, "cut": cut, "delays": delays, "cpu_s": cpu, "segments": segments}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counters", type=int, default=8, help="recordings, seeded as bench.server's counters")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument(
        "--thresholds", type=float, nargs="*", default=[], help="pause gate thresholds to compare with it off"
    )
    args = parser.parse_args()
    conversations = [counter_conversation(i, args.seconds) for i in range(args.counters)]
    gate = None
    if args.thresholds:
        from balto.adapters.silero_gate import load_silero_gate

        gate = load_silero_gate(ThreadPoolExecutor(1, thread_name_prefix="speech-gate"))
    report: dict[str, Any] = {"counters": args.counters, "seconds": args.seconds, "gates": []}
    for threshold in [None, *args.thresholds]:
        config = SegmenterConfig() if threshold is not None else SegmenterConfig(pause_gate_ms=0)
        closed, cut, broken, delays, cpu = 0, 0, [], [], 0.0
        for conversation in conversations:
            stream = gate.stream() if gate is not None and threshold is not None else None
            run = run_gate(conversation.pcm, conversation.spans, config, stream, threshold or 0.0)
            closed, cut, cpu = closed + run["closed"], cut + run["cut"], cpu + run["cpu_s"]
            broken += run["broken"]
            delays += run["delays"]
        lengths = np.array([ms for ms, _ in broken])
        by_speech = np.array([speech for _, speech in broken], dtype=bool)
        rows = []
        for start in STARTS_MS:
            reached = lengths >= start
            thrown = int(reached.sum())
            rows.append(
                {
                    "start_ms": start,
                    "kept": closed,
                    "thrown_away": thrown,
                    "by_speech": int((reached & by_speech).sum()),
                    "by_noise": int((reached & ~by_speech).sum()),
                    "share": thrown / (thrown + closed),
                }
            )
        audio_s = sum(c.duration_s for c in conversations)
        p50, p90, p95, most = np.percentile(delays, [50, 90, 95, 100]) if delays else (0.0,) * 4
        entry = {
            "pause_gate": "off" if threshold is None else f"{config.pause_gate_ms} ms, threshold {threshold}",
            "closed": closed,
            "cut_inside_sentence": cut,
            "close_after_sentence_s": {"p50": p50, "p90": p90, "p95": p95, "max": most, "n": len(delays)},
            "silero_cpu_s_per_audio_s": cpu / audio_s,
            "rows": rows,
        }
        report["gates"].append(entry)
        print(
            f"pause gate {entry['pause_gate']}: {closed} segments closed, {cut} cut inside a sentence; "
            f"close after the sentence p50 / p90 / p95 / max {p50:.3f} / {p90:.3f} / {p95:.3f} / {most:.3f} s; "
            f"Silero {entry['silero_cpu_s_per_audio_s']:.4f} CPU-s per audio-s"
        )
        print(" start (ms)  thrown away (by speech / by noise)  share of hearings started")
        for row in rows:
            print(
                f"{row['start_ms']:>11}  {row['thrown_away']:>11} ({row['by_speech']:>3} / {row['by_noise']:>3})"
                f"{'':>16}{row['share']:.2f}"
            )
    if gate is not None:
        gate.close()
    print(json.dumps(report, default=float))


if __name__ == "__main__":
    main()
