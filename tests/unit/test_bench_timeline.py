"""bench.timeline: the benchmark's sentences and a CPU trace of the same run, binned by the wall clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.threadcpu import trace_line
from bench.timeline import bins, level_of, read_trace, table


def slice_at(t: float, wall: float, whisper: float, idle: float) -> dict:
    return {
        "t": t,
        "wall": wall,
        "cores": {"server: whisper_0": whisper, "server: python": 0.1, "ffmpeg children": 0.05, "postgres": 0.01},
        "machine": {"busy": 2.0 - idle, "idle": idle, "iowait": 0.0, "steal": 0.0},
    }


def test_sentences_and_slices_fall_in_the_bins_of_their_wall_clock():
    timeline = [[0, 100.2, 0.5], [1, 101.0, 0.7], [2, 104.9, 2.1], [0, 106.0, 0.4]]
    # One-second slices ending at 101..107 s: their middles 100.5..104.5 in the first bin (from 100.2).
    whisper = [0.4, 0.6, 0.5, 0.5, 0.5, 1.8, 1.8]
    trace = [slice_at(t, 100.0 + t, whisper[t - 1], 1.0) for t in range(1, 8)]
    rows = bins(timeline, trace, width=5.0)
    assert [round(b.start - 100.2, 1) for b in rows] == [0.0, 5.0]
    first, second = rows
    assert first.latencies == [0.5, 0.7, 2.1] and first.worst == 2.1 and first.p50 == 0.7
    assert first.whisper == 0.5
    assert first.server == pytest.approx(0.65)  # the server's threads and its ffmpeg children, not postgres
    assert first.idle == 1.0 and first.busy == 1.0
    assert second.latencies == [0.4] and second.whisper == 1.8


def test_a_bin_with_no_sentence_still_shows_the_machine():
    rows = bins([[0, 100.0, 0.5]], [slice_at(1.0, 112.0, 0.0, 1.9)], width=5.0)
    assert [len(b.latencies) for b in rows] == [1, 0]
    lines = table(rows, rows[0].start)
    assert lines[2].split()[:4] == ["10", "0", "-", "-"]


def test_a_trace_without_the_wall_clock_is_refused(tmp_path: Path):
    old = tmp_path / "trace.jsonl"
    old.write_text(json.dumps({"t": 1.0, "cores": {}, "machine": {}}) + "\n")
    with pytest.raises(SystemExit, match="wall"):
        read_trace(old)


def test_threadcpu_stamps_each_slice_with_the_wall_clock(tmp_path: Path):
    line = trace_line(1.0, {}, {}, {"idle": 0.0}, {"idle": 1.0}, elapsed=1.0, wall=1765000000.123)
    path = tmp_path / "trace.jsonl"
    path.write_text(line + "\n")
    assert read_trace(path)[0]["wall"] == 1765000000.12


def test_a_soak_report_is_one_load_and_a_server_report_has_levels():
    timeline = [[0, 100.0, 0.5]]
    soak = {"counters": 24, "minutes": 60.0, "transcript_timeline": timeline}
    server = {"levels": [{"counters": 1, "transcript_timeline": []}, {"counters": 8, "transcript_timeline": timeline}]}
    assert level_of(soak, 0) is soak
    assert level_of(server, 1)["counters"] == 8
