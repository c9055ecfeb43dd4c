"""A benchmark level's sentences lined up with a per-second CPU trace of the same run.

    .venv/bin/python -m bench.timeline REPORT.json TRACE.jsonl [--level 0] [--bin 5] [--worst 5]

REPORT is `bench.server`'s report (its levels carry `transcript_timeline`: each sentence's latency,
end of speech -> transcript, at the moment its speech ended) or `bench.soak`'s (one load, its
`transcript_timeline` at the top; `--level` does not apply), TRACE a `bench.threadcpu --trace` of
the server during that level (each slice stamped with the wall clock). For each `--bin` seconds it
prints the sentences whose speech ended then, their p50 and worst latency, and what the machine did
meanwhile: Whisper's cores, the whole server's (ffmpeg children included), and the VM's busy, idle
and stolen cores. Then the bins with the worst sentences, so a tail reads as what it is: sentences
of several counters ending together while Whisper's workers are full (Whisper up, idle down), the
VM losing its cores (steal up), or the server waiting on nothing (idle up, Whisper down).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WHISPER = "server: whisper"  # the label prefix of CTranslate2's decode threads in bench.threadcpu
SERVER = ("server: ", "ffmpeg children")


@dataclass
class Bin:
    start: float  # Unix seconds
    latencies: list[float]
    whisper: float | None = None  # mean cores over the trace's slices in the bin
    server: float | None = None
    busy: float | None = None
    idle: float | None = None
    steal: float | None = None

    @property
    def p50(self) -> float | None:
        return statistics.median(self.latencies) if self.latencies else None

    @property
    def worst(self) -> float | None:
        return max(self.latencies) if self.latencies else None


def read_trace(path: Path) -> list[dict[str, Any]]:
    slices = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if slices and "wall" not in slices[0]:
        raise SystemExit(f"{path}: its slices carry no wall clock (`wall`); trace again with this bench.threadcpu")
    return slices


def bins(timeline: list[list[float]], trace: list[dict[str, Any]], width: float) -> list[Bin]:
    """`timeline`'s (counter, end of speech, latency) entries and the trace's slices, in bins of
    `width` seconds from the earlier of the two. A slice counts in the bin its middle falls in."""
    starts = [end for _, end, _ in timeline] + [s["wall"] for s in trace]
    if not starts:
        return []
    origin = min(starts)
    found: dict[int, Bin] = {}

    def at(wall: float) -> int:
        index = math.floor((wall - origin) / width)
        found.setdefault(index, Bin(origin + index * width, []))
        return index

    for _, end, latency in timeline:
        found[at(end)].latencies.append(latency)
    sliced: dict[int, list[dict[str, Any]]] = {}  # a bin with no sentence still shows the machine
    previous_t = 0.0
    for piece in trace:
        middle = piece["wall"] - (piece["t"] - previous_t) / 2
        previous_t = piece["t"]
        sliced.setdefault(at(middle), []).append(piece)
    for index, pieces in sliced.items():
        b = found[index]
        b.whisper = _mean(sum(v for k, v in p["cores"].items() if k.startswith(WHISPER)) for p in pieces)
        b.server = _mean(sum(v for k, v in p["cores"].items() if k.startswith(SERVER)) for p in pieces)
        for field in ("busy", "idle", "steal"):
            setattr(b, field, _mean(p["machine"][field] for p in pieces))
    return [found[i] for i in sorted(found)]


def _mean(values: Iterable[float]) -> float:
    return round(statistics.fmean(values), 3)


def table(rows: list[Bin], origin: float) -> list[str]:
    def cell(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        f"{'from s':>7} {'sentences':>9} {'p50 s':>6} {'worst s':>7} {'whisper':>7} {'server':>6} "
        f"{'busy':>5} {'idle':>5} {'steal':>5}"
    ]
    for b in rows:
        lines.append(
            f"{b.start - origin:7.0f} {len(b.latencies):9d} {cell(b.p50):>6} {cell(b.worst):>7} "
            f"{cell(b.whisper):>7} {cell(b.server):>6} {cell(b.busy):>5} {cell(b.idle):>5} {cell(b.steal):>5}"
        )
    return lines


def level_of(report: dict[str, Any], index: int) -> dict[str, Any]:
    """The level of a `bench.server` report at `index`; a `bench.soak` report is one load, read whole."""
    return report["levels"][index] if "levels" in report else report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("trace", type=Path)
    parser.add_argument("--level", type=int, default=0, help="which level of the report (its index)")
    parser.add_argument("--bin", type=float, default=5.0, help="seconds per row")
    parser.add_argument("--worst", type=int, default=5, help="bins listed again, worst sentence first")
    args = parser.parse_args()
    level = level_of(json.loads(args.report.read_text()), args.level)
    if "transcript_timeline" not in level:
        raise SystemExit(f"{args.report}: no transcript_timeline (a report from before it was added)")
    rows = bins(level["transcript_timeline"], read_trace(args.trace), args.bin)
    if not rows:
        raise SystemExit("nothing to line up")
    origin = rows[0].start
    print(f"{level['counters']} counters; seconds from the first sentence's end or the trace's start")
    print("\n".join(table(rows, origin)))
    worst = sorted((b for b in rows if b.latencies), key=lambda b: -(b.worst or 0.0))[: args.worst]
    print(f"\nworst {len(worst)} bins:")
    print("\n".join(table(worst, origin)))


if __name__ == "__main__":
    main()
