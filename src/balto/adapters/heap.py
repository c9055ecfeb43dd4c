"""Hands the memory the server has freed back to the system, every few minutes.

glibc keeps what a thread frees in that thread's heap, for its next allocation, and returns pages
to the kernel only from a heap's top. A server that decodes, cleans and embeds segments of every
length on several threads leaves holes in those heaps, so its resident memory creeps up by the
high-water marks of its heaps, not by what it holds: an hour of 12 counters took it from 748 to
875 MB, and `malloc_trim(0)` at 18 minutes of such a load took it from 818 to 724 MB, below where
it started (docs/performance.md, the Zen 3 soak round). A daemon thread calls `malloc_trim(0)`
every HEAP_TRIM_EVERY_S, off the event loop; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    with contextlib.suppress(AttributeError, OSError):
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
        return trim
    return None


def release_free_heap() -> bool:
    """glibc's `malloc_trim(0)`: every heap's free pages back to the kernel. False where there is no
    glibc (or it had nothing to give back)."""
    trim = _glibc_malloc_trim()
    return bool(trim(0)) if trim is not None else False


class HeapTrimmer:
    """A daemon thread that calls `trim` every `every_s`, and counts the calls and their seconds."""

    def __init__(self, every_s: float, trim: Callable[[], bool] = release_free_heap) -> None:
        self._every = every_s
        self._trim = trim
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="balto-heaptrim", daemon=True)
        self.trims = 0
        self.seconds = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            started = time.perf_counter()
            try:
                self._trim()
            except Exception:  # never the server's problem: the next period tries again
                log.exception("handing freed memory back failed")
            self.seconds += time.perf_counter() - started
            self.trims += 1
