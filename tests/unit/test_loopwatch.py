"""The event-loop watchdog names what held the loop, and tells that from a loop that was merely idle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterator

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
