"""The server waits for its ffmpeg children on pidfds the event loop watches, not a thread each."""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings

import pytest

from balto.app.server import watch_children_with_pidfd


async def test_a_child_is_awaited_on_a_pidfd_without_a_thread_of_its_own():
    if not watch_children_with_pidfd():
        pytest.skip("asyncio uses pidfds by itself from Python 3.12; older kernels have none")
    try:
        threads = threading.active_count()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        assert threading.active_count() == threads
        assert await proc.wait() == 0
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(None)  # back to asyncio's default for the tests that follow


def test_under_uvloop_a_child_is_awaited_without_a_watcher_or_a_thread():
    """uvloop reaps its children itself (libuv's SIGCHLD handler): no watcher to install, no thread."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[bool, int, int, int]:
        installed = watch_children_with_pidfd()
        threads = threading.active_count()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        during = threading.active_count()
        return installed, threads, during, await proc.wait()

    installed, threads, during, code = uvloop.run(scenario())
    assert not installed
    assert during == threads
    assert code == 0
