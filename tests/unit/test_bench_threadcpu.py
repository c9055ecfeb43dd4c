"""bench.threadcpu's arithmetic: cores by label between two readings, and the trace's slice of the VM."""

from __future__ import annotations

import json
import threading

import pytest
from bench.threadcpu import MACHINE_FIELDS, cores_between, machine_between, trace_line


def test_cores_are_summed_by_label_and_a_thread_born_inside_counts_whole():
    before = {(1, 1): ("server: whisper_0", 10.0, 100), (1, 2): ("server: python", 4.0, 0)}
    after = {
        (1, 1): ("server: whisper_0", 15.0, 150),
        (1, 2): ("server: python", 5.0, 0),
        (1, 3): ("server: whisper_0", 2.0, 50),  # born inside the window
    }
    cores, faults = cores_between(before, after, elapsed=10.0)
    assert cores["server: whisper_0"] == pytest.approx(0.7)
    assert cores["server: python"] == pytest.approx(0.1)
    assert faults["server: whisper_0"] == pytest.approx(10.0)


def test_the_vm_slice_tells_stolen_cores_from_idle_ones():
    # user, nice, system, idle, iowait, irq, softirq, steal
    before = dict(zip(MACHINE_FIELDS, (100.0, 0.0, 20.0, 50.0, 1.0, 0.0, 1.0, 0.0), strict=True))
    after = dict(zip(MACHINE_FIELDS, (100.5, 0.0, 20.2, 50.1, 1.0, 0.0, 1.1, 1.2), strict=True))
    machine = machine_between(before, after, elapsed=1.0)
    assert machine == {"busy": 0.8, "idle": 0.1, "iowait": 0.0, "steal": 1.2}


def test_a_trace_line_is_one_json_object_with_the_slice_time():
    before = {(1, 1): ("server: whisper_0", 1.0, 0)}
    after = {(1, 1): ("server: whisper_0", 1.9, 0), (2, 2): ("ffmpeg children", 0.0005, 0)}
    line = json.loads(trace_line(3.04, before, after, {"idle": 0.0}, {"idle": 1.0}, elapsed=1.0))
    assert line["t"] == 3.0
    assert line["cores"] == {"server: whisper_0": 0.9}  # below a thousandth of a core: left out
    assert line["machine"]["idle"] == 1.0


def test_a_server_that_exits_inside_the_window_gets_the_seconds_it_ran(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    from bench import threadcpu

    server = subprocess.Popen([sys.executable, "-c", "import time; t = time.time()\nwhile time.time() - t < 1.2: pass"])
    trace = tmp_path / "trace.jsonl"
    argv = ["threadcpu", "--pid", str(server.pid), "--window", "5", "--every", "0.3", "--trace", str(trace)]
    monkeypatch.setattr(sys, "argv", argv)
    reaper = threading.Timer(1.6, server.wait)  # reaped, so its /proc entry goes as a server's would
    reaper.start()
    threadcpu.main()
    reaper.join()
    out = capsys.readouterr().out
    assert f"the server (pid {server.pid}) exited" in out
    server_cores = float(next(line for line in out.splitlines() if "server: python" in line).split()[2])
    assert server_cores > 0.3  # its busy second counted, not lost to the reading after its exit
    assert trace.read_text().count("\n") >= 3


def test_a_child_that_ends_inside_the_window_keeps_what_it_spent(monkeypatch, capsys):
    """An ffmpeg child ends at each counter's close: the table adds up the slices, so its CPU counts
    (a table of the last reading against the first had no line for it at all)."""
    import subprocess
    import sys

    from bench import threadcpu

    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    busy = "import time; t = time.time()\nwhile time.time() - t < 0.8: pass"
    child = subprocess.Popen([sys.executable, "-c", busy, "ffmpeg"])  # "ffmpeg" in its command line
    reaper = threading.Timer(1.2, child.wait)
    reaper.start()
    monkeypatch.setattr(sys, "argv", ["threadcpu", "--pid", str(server.pid), "--window", "2", "--every", "0.2"])
    try:
        threadcpu.main()
    finally:
        reaper.join()
        server.kill()
        server.wait()
    out = capsys.readouterr().out
    ffmpeg = float(next(line for line in out.splitlines() if "ffmpeg children" in line).split()[2])
    assert ffmpeg > 0.2  # about 0.8 s of one core over the 2 s window
