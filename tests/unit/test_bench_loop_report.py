"""The benchmark's report: every watchdog stall counted, though only the first ten quoted; the segments
the speech gate dropped counted from its rows; each sentence's latency kept with its wall-clock time."""

from __future__ import annotations

import numpy as np
from bench.audio import Conversation
from bench.server import Counter, analyse, counter_conversation, segments_heard, slow_callbacks


def test_every_watchdog_stall_is_counted_and_the_first_ten_quoted():
    stall = (
        "WARNING event loop blocked {ms} ms so far; the loop thread is at:\n"
        '  File "/usr/lib/python3.11/asyncio/selector_events.py", line 995, in _read_ready__data_received\n'
        "    data = self._sock.recv(self.max_size)\n"
    )
    log = "".join(stall.format(ms=20 + i) for i in range(12)) + "event loop woken 30 ms late\n"
    report = slow_callbacks(log)
    assert report["watchdog_blocked_count"] == 12
    assert len(report["watchdog_blocked"]) == 10
    assert report["watchdog_blocked"][0].startswith("20 ms at File")
    assert report["woken_late"] == {"count": 1, "max_ms": 30}


def test_segments_dropped_by_the_speech_gate_are_counted_from_its_rows_latency():
    before = {
        "balto_segments_total": 10.0,
        'balto_stt_latency_seconds_count{provider="silero",status="vazia"}': 2.0,
        'balto_stt_latency_seconds_count{provider="whisper",status="ok"}': 8.0,
    }
    after = {
        "balto_segments_total": 25.0,
        'balto_stt_latency_seconds_count{provider="silero",status="vazia"}': 5.0,
        'balto_stt_latency_seconds_count{provider="whisper",status="ok"}': 20.0,
    }
    assert segments_heard(before, after) == {"processed": 15, "dropped_by_speech_gate": 3}
    assert segments_heard({}, {}) == {"processed": 0, "dropped_by_speech_gate": 0}


def test_each_sentence_latency_is_kept_at_the_wall_clock_its_speech_ended():
    conversation = Conversation(np.zeros(16_000 * 10, np.int16), ["bom dia", "obrigado"], [(1.0, 2.0), (4.0, 5.5)])
    counter = Counter(0, "key", conversation, [], 0.1, started_at=1000.0)
    counter.events = [
        (1005.9, {"comando": "transcricao", "texto": "obrigado", "inicio": 3.98, "fim": 5.52, "interacao_id": "b"}),
        (1002.5, {"comando": "transcricao", "texto": "bom dia", "inicio": 0.98, "fim": 2.02, "interacao_id": "a"}),
    ]
    report = analyse([counter])
    assert report["transcript_timeline"] == [[0, 1002.0, 0.5], [0, 1005.5, 0.4]]
    assert report["end_of_speech_to_transcript_s"]["n"] == 2


def test_a_longer_lead_delays_the_first_sentence_and_keeps_the_order():
    default = counter_conversation(3, 40.0, "fixtures")
    spread = counter_conversation(3, 40.0, "fixtures", lead_s=10.0)
    shift = spread.spans[0][0] - default.spans[0][0]
    assert 0.0 < shift <= 9.0
    assert spread.transcripts == default.transcripts[: len(spread.transcripts)]
    assert all(abs(b[0] - a[0] - shift) < 1e-6 for a, b in zip(default.spans, spread.spans, strict=False))
