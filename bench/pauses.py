"""Pauses inside a segment: how many early hearings speech would throw away, by when they start.

    .venv/bin/python -m bench.pauses [--counters 8] [--seconds 180]

The VAD closes a segment after `hang_over_ms` (450) of silence, and a segment can be heard early,
during that silence (`VAD_EARLY_START_MS`); a pause that speech breaks before the hang-over ends
throws such a hearing away. This runs the production segmenter (webrtcvad, the energy gate) over
the load benchmark's own recordings (`bench.server`: the same seeds, real sentences when present,
pauses of 0.5-8 s, cafe noise at 20 dB) and counts, for each start time, the segments that close
(each is one hearing kept) and the pauses that reach the start but end before the close (each is
one hearing thrown away). It needs no model: seconds on one core.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.domain.vad import FRAME_SAMPLES, Segmenter, SegmenterConfig
from bench.server import counter_conversation

STARTS_MS = (120, 150, 180, 210, 240, 270, 300, 330, 360, 390, 420)


def pauses(pcm: np.ndarray, config: SegmenterConfig) -> tuple[int, list[int]]:
    """Segments closed, and the length of each pause inside a segment that speech broke (ms)."""
    detector, segmenter = WebRtcSpeechDetector(2), Segmenter(config=config)
    closed, broken, previous = 0, [], 0
    for offset in range(0, pcm.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = pcm[offset : offset + FRAME_SAMPLES]
        if segmenter.push(frame, detector.is_voiced(frame), 0.0) is not None:
            closed += 1
        elif segmenter.in_speech and previous and not segmenter.trailing_silence_ms:
            broken.append(previous)
        previous = segmenter.trailing_silence_ms
    return closed, broken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counters", type=int, default=8, help="recordings, seeded as bench.server's counters")
    parser.add_argument("--seconds", type=float, default=180.0)
    args = parser.parse_args()
    config = SegmenterConfig()
    closed, broken = 0, []
    for i in range(args.counters):
        c, b = pauses(counter_conversation(i, args.seconds).pcm, config)
        closed, broken = closed + c, broken + b
    lengths = np.array(broken)
    rows = []
    for start in STARTS_MS:
        thrown = int((lengths >= start).sum())
        rows.append({"start_ms": start, "kept": closed, "thrown_away": thrown, "share": thrown / (thrown + closed)})
    print(f"hang-over {config.hang_over_ms} ms; {closed} segments closed, {len(broken)} pauses broken by speech")
    print(" start (ms)  thrown away  share of hearings started")
    for row in rows:
        print(f"{row['start_ms']:>11}  {row['thrown_away']:>11}  {row['share']:.2f}")
    print(json.dumps({"hang_over_ms": config.hang_over_ms, "rows": rows}))


if __name__ == "__main__":
    main()
