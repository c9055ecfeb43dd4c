"""Stage latencies from a row's ts_* stamps, their percentiles and their histogram."""

from __future__ import annotations

import pytest

from balto.domain.interaction import Interaction
from balto.domain.latency import durations_ms, histogram, nice_step, percentile, summarize

T0 = 1_700_000_000.0


def full_cycle() -> Interaction:
    return Interaction(
        balcao_id="B1",
        conexao_id="c1",
        ts_audio_received=T0,
        ts_segment_closed=T0 + 3.0,
        ts_trans_req=T0 + 3.010,
        ts_trans_resp=T0 + 3.410,
        ts_trans_sent=T0 + 3.412,
        ts_playbook_sent=T0 + 3.420,
        ts_ai_req=T0 + 3.430,
        ts_ai_resp=T0 + 4.430,
        ts_rec_sent=T0 + 4.435,
    )


def test_every_stage_of_a_full_cycle():
    d = durations_ms(full_cycle())
    assert d["fila"] == pytest.approx(10.0, abs=0.1)
    assert d["transcricao"] == pytest.approx(400.0, abs=0.1)
    assert d["envio_transcricao"] == pytest.approx(2.0, abs=0.1)
    assert d["playbook"] == pytest.approx(8.0, abs=0.1)  # counted from the transcript frame
    assert d["ia"] == pytest.approx(1000.0, abs=0.1)
    assert d["envio_recomendacao"] == pytest.approx(5.0, abs=0.1)
    assert d["ate_transcricao"] == pytest.approx(412.0, abs=0.1)
    assert d["ate_playbook"] == pytest.approx(420.0, abs=0.1)
    assert d["ate_ia"] == pytest.approx(1435.0, abs=0.1)
    assert d["fala"] == pytest.approx(3000.0, abs=0.1)


def test_stages_that_did_not_run_are_none():
    row = Interaction(balcao_id="B1", conexao_id="c1", ts_segment_closed=T0, ts_trans_req=T0, ts_trans_resp=T0 + 0.2)
    d = durations_ms(row)
    assert d["transcricao"] == pytest.approx(200.0)
    assert d["envio_transcricao"] is None and d["ia"] is None and d["ate_transcricao"] is None


def test_playbook_counts_from_the_transcript_when_no_frame_was_sent():
    row = Interaction(balcao_id="B1", conexao_id="c1", ts_trans_resp=T0, ts_playbook_sent=T0 + 0.05)
    assert durations_ms(row)["playbook"] == pytest.approx(50.0)


def test_a_timer_row_has_only_the_llm_stages():
    row = Interaction(balcao_id="B1", conexao_id="c1", ts_ai_req=T0, ts_ai_resp=T0 + 0.8, ts_rec_sent=T0 + 0.801)
    d = durations_ms(row)
    assert d["ia"] == pytest.approx(800.0) and d["ate_ia"] is None and d["fila"] is None


def test_percentiles_interpolate_like_numpy():
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0.5) == 25.0
    assert percentile(values, 0.9) == pytest.approx(37.0)
    assert percentile([5.0], 0.99) == 5.0


def test_summary_ignores_missing_values():
    s = summarize([None, 100.0, 300.0, None, 200.0])
    assert (s.count, s.p50, s.max, s.mean) == (3, 200.0, 300.0, 200.0)
    assert summarize([None]).count == 0 and summarize([]).p50 is None


def test_nice_steps():
    assert nice_step(1200, 12) == 100
    assert nice_step(1300, 12) == 200
    assert nice_step(37, 12) == 5
    assert nice_step(0, 12) == 1


def test_histogram_buckets_cover_every_value():
    h = histogram([0.0, 50.0, 99.9, 100.0, 1200.0, None], buckets=12)
    assert h.edges[0] == 0 and h.edges[1] == 100
    assert len(h.counts) == len(h.edges) - 1 == 12
    assert sum(h.counts) == 5
    assert h.counts[0] == 3 and h.counts[1] == 1 and h.counts[-1] == 1  # the maximum falls in the last bucket
    assert histogram([None]).counts == ()
