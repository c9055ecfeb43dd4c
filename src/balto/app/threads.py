"""Threads that compute (Whisper's decodes, the speaker encoder, the speech gate) yield the CPU to
the event loop: they run one notch of `nice` lower, so the loop thread, which only ever runs a few
milliseconds at a time, gets a core as soon as a frame or a socket wants it; the speaker thread runs
one notch lower still, below Whisper's decodes (SPEAKER_NICE). They also carry their
name to the operating system (`top -H`, `ps -T`, perf), where Python leaves every thread "python"."""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

COMPUTE_NICE = 5  # added to the process's nice value; lower priority only ever, so no privilege needed
# The speaker thread (noise cleaning and the voice) one notch below Whisper's decodes: its work is a
# sixth of a decode and usually done long before the transcript, so on two busy cores it waits for
# Whisper rather than slowing a decode down.
SPEAKER_NICE = 10


def yield_to_the_loop(nice: int = COMPUTE_NICE) -> None:
    """Lower the calling thread's scheduling priority by `nice` (Linux, where priority is per thread),
    and give the OS thread its Python name. Threads it creates inherit both: CTranslate2's decode
    threads are started by the thread that loads the model."""
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        with open(f"/proc/self/task/{tid}/comm", "w") as comm:
            comm.write(threading.current_thread().name[:15])  # the kernel keeps 15 bytes
    except OSError as exc:
        log.debug("could not name thread %s: %s", tid, exc)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # a sandbox that forbids it: the threads keep the loop's priority
        log.debug("could not lower thread %s's priority: %s", tid, exc)


def compute_executor(workers: int, name: str, nice: int = COMPUTE_NICE) -> ThreadPoolExecutor:
    """A pool whose threads yield to the event loop (`nice` notches below it)."""
    return ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=yield_to_the_loop, initargs=(nice,))
