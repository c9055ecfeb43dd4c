"""The benchmark's report: every watchdog stall counted, though only the first ten quoted; the segments
the speech gate dropped counted from its rows."""

from __future__ import annotations

from bench.server import segments_heard, slow_callbacks


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
