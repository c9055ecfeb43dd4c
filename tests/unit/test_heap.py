"""The heap trimmer: glibc's freed memory handed back every few minutes, off the event loop."""

from __future__ import annotations

import threading
import time

from balto.adapters.heap import HeapTrimmer, release_free_heap
from balto.app.metrics import Metrics, parse
from balto.app.settings import Settings


def test_the_trimmer_calls_its_trim_every_period_in_its_own_thread_until_stopped():
    threads: list[str] = []

    def trim() -> bool:
        threads.append(threading.current_thread().name)
        return True

    trimmer = HeapTrimmer(0.02, trim)
    trimmer.start()
    time.sleep(0.15)
    trimmer.stop()
    calls = trimmer.trims
    assert calls >= 3 and calls == len(threads) and set(threads) == {"balto-heaptrim"}
    assert trimmer.seconds >= 0.0
    time.sleep(0.05)
    assert trimmer.trims == calls  # stopped for good


def test_a_failing_trim_is_logged_and_tried_again(caplog):
    def trim() -> bool:
        raise OSError("no heap")

    trimmer = HeapTrimmer(0.02, trim)
    trimmer.start()
    time.sleep(0.1)
    trimmer.stop()
    assert trimmer.trims >= 2
    assert "handing freed memory back failed" in caplog.text


def test_release_free_heap_answers_on_this_libc_without_raising():
    assert release_free_heap() in (True, False)  # glibc: whether it gave pages back; elsewhere False


def test_every_minute_by_default_and_off_with_zero():
    assert Settings.from_env({}).heap_trim_every_s == 60.0
    assert Settings.from_env({"HEAP_TRIM_EVERY_S": "0"}).heap_trim_every_s == 0.0


def test_metrics_show_the_trims_only_with_a_trimmer():
    metrics = Metrics()
    assert "balto_heap_trims_total" not in parse(metrics.render())
    trimmer = HeapTrimmer(60.0, lambda: True)
    trimmer.trims, trimmer.seconds = 3, 0.012
    metrics.heap_trims.read = lambda: float(trimmer.trims)
    metrics.heap_trim_seconds.read = lambda: trimmer.seconds
    samples = parse(metrics.render())
    assert samples["balto_heap_trims_total"] == 3.0 and samples["balto_heap_trim_seconds_total"] == 0.012
