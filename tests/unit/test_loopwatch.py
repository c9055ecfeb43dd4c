"""The event-loop watchdog names what held the loop, and tells that from a loop that was merely idle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Iterator

import pytest

from balto.app.loopwatch import LoopWatchdog


def hold_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # a stage computing on the loop thread


@contextlib.contextmanager
def watching(threshold_s: float) -> Iterator[LoopWatchdog]:
    watchdog = LoopWatchdog(asyncio.get_running_loop(), threshold_s=threshold_s)
    watchdog.start()
    try:
        yield watchdog
    finally:
        watchdog.stop()


async def test_a_callback_holding_the_loop_is_reported_with_its_stack(caplog):
    with caplog.at_level(logging.INFO, logger="balto.loopwatch"), watching(0.02):
        await asyncio.sleep(0.03)
        hold_the_loop_for(0.15)
        await asyncio.sleep(0.03)
    blocked = [r for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert len(blocked) == 1, caplog.text  # once per stall, not once per check
    assert "hold_the_loop_for" in blocked[0].getMessage()


async def test_an_idle_loop_is_not_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="balto.loopwatch"), watching(0.02):
        await asyncio.sleep(0.2)
    assert not caplog.records, caplog.text


async def test_a_slow_garbage_collection_is_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="balto.loopwatch"), watching(0.0) as watchdog:
        gc.collect()
    assert "garbage collection of generation 2" in caplog.text
    assert watchdog._gc not in gc.callbacks  # stop() unhooks it


def test_under_uvloop_a_callback_holding_the_loop_is_told_from_an_idle_loop(caplog):
    """uvloop waits for events in C: the watchdog still names a stage that holds the loop, and a
    late wake-up of an idle loop is not reported as one."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario(watchdog_threshold_s: float, hold_s: float) -> None:
        with watching(watchdog_threshold_s):
            await asyncio.sleep(0.03)
            if hold_s:
                hold_the_loop_for(hold_s)
            await asyncio.sleep(0.05)

    with caplog.at_level(logging.INFO, logger="balto.loopwatch"):
        uvloop.run(scenario(0.02, 0.15))
    blocked = [r for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert len(blocked) == 1, caplog.text
    assert "hold_the_loop_for" in blocked[0].getMessage()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="balto.loopwatch"):
        uvloop.run(scenario(0.02, 0.0))
    assert not caplog.records, caplog.text


def test_under_uvloop_the_loop_thread_waiting_is_idle():
    """Where uvloop's thread waits, as the watchdog sees it: the frame that started the loop."""
    uvloop = pytest.importorskip("uvloop")
    seen: dict[str, object] = {}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        watchdog = LoopWatchdog(loop, threshold_s=10.0)
        watchdog.start()
        await asyncio.sleep(0.01)
        seen["entry"] = watchdog._entry

        def look() -> object:
            time.sleep(0.05)  # once the loop thread is back waiting (it starts this thread first)
            return sys._current_frames()[watchdog._loop_thread].f_code

        seen["waiting"] = await loop.run_in_executor(None, look)
        watchdog.stop()

    uvloop.run(scenario())
    assert seen["entry"] is not None
    assert seen["waiting"] is seen["entry"]
