"""A watchdog for the event loop: when the loop thread has not come back for longer than a threshold,
log where it is (its Python stack), once per stall.

asyncio's debug mode says *which* callback was slow, after the fact; this says *what line* the loop
thread was on while it was stuck, which is what tells a long computation on the loop from a thread
that holds the GIL. Started by LOOP_WATCHDOG_MS or ASYNCIO_SLOW_CALLBACK_MS (diagnosing, not serving).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from types import CodeType

log = logging.getLogger("balto.loopwatch")

_WAITING = {"poll", "select", "epoll", "kqueue"}  # the innermost frame of a loop waiting for events


class LoopWatchdog:
    """A heartbeat scheduled on the loop every `period_s`, and a daemon thread that checks it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold_s: float, period_s: float = 0.005) -> None:
        self._loop = loop
        self._threshold = threshold_s
        self._period = period_s
        self._beat = time.monotonic()
        self._gc_started = 0.0
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._handle: asyncio.TimerHandle | None = None
        self._entry: CodeType | None = None  # where a loop written in C waits, as Python sees it
        self._thread = threading.Thread(target=self._watch, name="balto-loopwatch", daemon=True)

    def start(self) -> None:
        self._tick()
        self._loop.call_soon(self._find_entry)
        self._thread.start()
        gc.callbacks.append(self._gc)

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        if self._thread.is_alive():
            self._thread.join(1.0)  # its check under way ends first: nothing is logged after stop()

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        # A collection stops every thread that wants the GIL, the loop's included.
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_started
        if took > self._threshold:
            log.warning(
                "garbage collection of generation %d took %.0f ms (%d collected, %d tracked objects)",
                info["generation"],
                took * 1000,
                info["collected"],
                len(gc.get_objects(info["generation"])),
            )

    def _find_entry(self) -> None:
        # asyncio's loop waits in selectors' Python code (_WAITING); uvloop's waits in C, so while it
        # waits the loop thread's innermost Python frame is the one that started the loop, the frame
        # under any callback it runs.
        if not isinstance(self._loop, asyncio.BaseEventLoop):
            caller = sys._getframe().f_back
            self._entry = caller.f_code if caller is not None else None

    def _tick(self) -> None:
        self._beat = time.monotonic()
        self._handle = self._loop.call_later(self._period, self._tick)

    def _watch(self) -> None:
        reported = 0.0  # the heartbeat of the stall already reported
        while not self._stop.wait(self._threshold / 4):
            beat = self._beat
            late = time.monotonic() - beat - self._period
            if late <= self._threshold or beat == reported:
                continue
            reported = beat
            frame = sys._current_frames().get(self._loop_thread)
            if frame is not None and (frame.f_code.co_name in _WAITING or frame.f_code is self._entry):
                # Idle, waiting for events: no callback is running; the thread was woken late (both cores
                # busy, or another thread holding the GIL). Reported apart from a stage holding the loop.
                # (Under uvloop, work the loop does in C between callbacks looks the same from here.)
                log.info("event loop woken %.0f ms late (idle in %s)", late * 1000, frame.f_code.co_name)
                continue
            # The innermost frames: what the loop thread is doing, not how it got there.
            stack = "".join(traceback.format_stack(frame)[-10:]) if frame is not None else "(no frame)\n"
            log.warning("event loop blocked %.0f ms so far; the loop thread is at:\n%s", late * 1000, stack)
