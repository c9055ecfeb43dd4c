"""The event-loop watchdog names what held the loop, and tells that from a loop that was merely idle."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from balto.app.loopwatch import LoopWatchdog


def hold_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # a stage computing on the loop thread


async def test_a_callback_holding_the_loop_is_reported_with_its_stack(caplog):
    watchdog = LoopWatchdog(asyncio.get_running_loop(), threshold_s=0.02)
    with caplog.at_level(logging.INFO, logger="balto.loopwatch"):
        watchdog.start()
        try:
            await asyncio.sleep(0.03)
            hold_the_loop_for(0.15)
            await asyncio.sleep(0.03)
        finally:
            watchdog.stop()
    blocked = [r for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert len(blocked) == 1, caplog.text  # once per stall, not once per check
    assert "hold_the_loop_for" in blocked[0].getMessage()


async def test_an_idle_loop_is_not_reported(caplog):
    watchdog = LoopWatchdog(asyncio.get_running_loop(), threshold_s=0.02)
    with caplog.at_level(logging.WARNING, logger="balto.loopwatch"):
        watchdog.start()
        try:
            await asyncio.sleep(0.2)
        finally:
            watchdog.stop()
    assert not caplog.records, caplog.text


async def test_a_slow_garbage_collection_is_reported(caplog):
    watchdog = LoopWatchdog(asyncio.get_running_loop(), threshold_s=0.0)
    with caplog.at_level(logging.WARNING, logger="balto.loopwatch"):
        watchdog.start()
        try:
            gc.collect()
        finally:
            watchdog.stop()
    assert "garbage collection of generation 2" in caplog.text
    assert watchdog._gc not in gc.callbacks  # stop() unhooks it
