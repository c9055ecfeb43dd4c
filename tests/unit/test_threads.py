"""Compute threads run below the event loop's scheduling priority, under their own names."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from balto.app.threads import COMPUTE_NICE, SPEAKER_NICE, compute_executor


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priority is Linux's")
def test_a_compute_thread_and_the_threads_it_starts_yield_to_the_loop():
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def nice_of_a_thread_started_here() -> tuple[int, int]:
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        child: list[int] = []
        thread = threading.Thread(
            target=lambda: child.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        )
        thread.start()
        thread.join()
        return mine, child[0]

    executor = compute_executor(1, "test-compute")
    try:
        mine, child = executor.submit(nice_of_a_thread_started_here).result()
    finally:
        executor.shutdown()
    expected = min(19, loop_nice + COMPUTE_NICE)
    assert mine == child == expected  # CTranslate2's decode threads inherit it from the loading thread
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_nice  # the caller keeps its own


@pytest.mark.skipif(sys.platform != "linux", reason="/proc is Linux's")
def test_a_compute_thread_and_the_threads_it_starts_carry_its_name_to_the_os():
    def os_names() -> tuple[str, str]:
        def comm() -> str:
            with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
                return f.read().strip()

        child: list[str] = []
        thread = threading.Thread(target=lambda: child.append(comm()))
        thread.start()
        thread.join()
        return comm(), child[0]

    executor = compute_executor(1, "speaker")
    try:
        assert executor.submit(os_names).result() == ("speaker_0", "speaker_0")
    finally:
        executor.shutdown()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priority is Linux's")
def test_the_speaker_thread_runs_below_whispers_decodes():
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def my_nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    whisper, speaker = compute_executor(1, "whisper"), compute_executor(1, "speaker", SPEAKER_NICE)
    try:
        decode_nice, speaker_nice = whisper.submit(my_nice).result(), speaker.submit(my_nice).result()
    finally:
        whisper.shutdown()
        speaker.shutdown()
    assert decode_nice == min(19, loop_nice + COMPUTE_NICE)
    assert speaker_nice == min(19, loop_nice + SPEAKER_NICE)
    assert speaker_nice > decode_nice or speaker_nice == 19  # only a process already at 19 ties
