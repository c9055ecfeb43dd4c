"""The benchmark's loop report counts every watchdog stall, though it quotes only the first ten."""

from __future__ import annotations

from bench.server import slow_callbacks


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
