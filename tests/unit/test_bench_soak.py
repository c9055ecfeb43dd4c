"""bench.soak's bookkeeping: the counters' sessions, the windows, the memory's trend, and its checks
that nothing was lost and nothing left behind."""

from __future__ import annotations

import pytest
from bench.soak import MIN_SESSION_S, Sample, growth_mb_per_hour, leftovers, nothing_lost, session_lengths, windows


def at(t: float, rss: float = 700.0, cpu: float = 0.0, **gauges: int) -> Sample:
    values = {
        "fds": 40,
        "threads": 30,
        "tasks": 10,
        "ffmpeg": 0,
        "connections": 0,
        "storage_queue": 0,
        "journal": 0,
        "db_pool": 2,
    }
    values.update(gauges)
    return Sample(t=t, rss_mb=rss, rss_with_children_mb=rss + 50, pss_mb=None, cpu_s=cpu, **values)


def test_sessions_fill_the_soak_and_reconnect_at_spread_moments():
    plans = [session_lengths(i, 4, 900.0, 300.0) for i in range(4)]
    assert all(sum(plan) == pytest.approx(900.0) for plan in plans)
    # The first session ends at a different moment for each counter; the others last 300 s.
    assert [plan[0] for plan in plans] == [75.0, 150.0, 225.0, 300.0]
    assert plans[1] == [150.0, 300.0, 300.0, 150.0]
    assert all(length >= MIN_SESSION_S for plan in plans for length in plan)


def test_a_short_remainder_joins_the_last_session_and_zero_means_one_session():
    assert session_lengths(0, 1, 630.0, 300.0) == [300.0, 330.0]
    assert session_lengths(0, 8, 200.0, 300.0) == [200.0]
    assert session_lengths(3, 8, 1800.0, 0.0) == [1800.0]


def test_growth_is_the_slope_after_the_warm_up_in_mb_an_hour():
    # 100 MB of warm-up in the first window, then 2 MB a minute: 120 MB an hour.
    samples = [at(t, rss=600.0 + (100.0 if t > 0 else 0.0) + 2.0 * max(0.0, t - 300) / 60) for t in range(0, 1800, 10)]
    assert growth_mb_per_hour(samples, after_s=300) == pytest.approx(120.0, abs=0.5)
    flat = [at(t, rss=700.0) for t in range(0, 1800, 10)]
    assert growth_mb_per_hour(flat, after_s=300) == 0.0
    assert growth_mb_per_hour(flat[:5], after_s=0) is None  # under a minute of samples


def test_windows_hold_the_sentences_that_ended_in_them_and_the_cpu_over_their_audio():
    origin = 1000.0
    timeline = [[0, 1010.0, 0.5], [1, 1050.0, 0.7], [0, 1070.0, 2.0], [1, 1119.0, 0.9]]
    streamed = [(1000.0, 1120.0), (1000.0, 1060.0)]  # two counters, the second gone after 60 s
    samples = [at(float(t), cpu=0.05 * t) for t in range(0, 121, 10)]
    rows = windows(timeline, streamed, samples, origin, window_s=60.0, total_s=120.0)
    assert [(w["from_s"], w["to_s"]) for w in rows] == [(0.0, 60.0), (60.0, 120.0)]
    first, second = rows
    assert first["transcript_s"]["n"] == 2 and first["transcript_s"]["max"] == 0.7
    assert second["transcript_s"]["n"] == 2 and second["transcript_s"]["max"] == 2.0
    assert first["audio_s"] == 120.0 and second["audio_s"] == 60.0
    assert first["server_cpu_s_per_audio_s"] == pytest.approx(3.0 / 120.0)
    assert second["server_cpu_s_per_audio_s"] == pytest.approx(3.0 / 60.0)


def test_nothing_lost_needs_every_id_sent_in_the_database_and_every_row_handed_stored():
    stored = {"bench-000": {"a", "b", "gate"}, "bench-001": {"c"}}  # a row the gate kept sends no frame
    ok = nothing_lost({"bench-000": {"a", "b"}, "bench-001": {"c"}}, stored, handed=4)
    assert ok["ok"] and ok["missing_from_database"] == 0 and ok["rows_stored"] == 4
    lost = nothing_lost({"bench-000": {"a", "z"}, "bench-001": {"c"}}, stored, handed=4)
    assert not lost["ok"] and lost["missing_examples"] == ["z"]
    assert not nothing_lost({"bench-002": {"d"}}, stored, handed=4)["ok"]  # a balcão with no row at all
    assert not nothing_lost({"bench-000": {"a"}}, stored, handed=5)["ok"]  # a row handed to storage never arrived


def test_leftovers_flag_what_outlives_the_load_but_not_the_database_pool():
    before = at(0.0, tasks=10, fds=40, db_pool=2)
    assert leftovers(before, at(100.0, tasks=10, fds=44, db_pool=6))["clean"]  # the pool grew: on purpose
    assert not leftovers(before, at(100.0, ffmpeg=1))["clean"]
    assert not leftovers(before, at(100.0, tasks=12))["clean"]
    leaked = leftovers(before, at(100.0, fds=45))
    assert not leaked["clean"] and leaked["fds_beyond_pool_grown"] == 5
