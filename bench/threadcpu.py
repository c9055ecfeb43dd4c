"""Where a running server's CPU goes, by thread: cores each thread name took over a window.

    .venv/bin/python -m bench.threadcpu [--pid PID] [--wait 45] [--window 90] [--trace FILE [--every 1]]

Run it beside `bench.server` (or a real load): after `--wait` seconds it reads every thread's CPU time
from /proc, again every `--every` seconds until `--window` seconds later (or until the server exits:
the table then covers the seconds it ran, and says so), and prints the cores each took, by the name
the server gives its threads (`src/balto/app/threads.py`: `whisper_0` is CTranslate2's decode
threads, started by the thread that loaded the model; `speaker_0`, `speech-gate_0`; `python` the
event loop and the rest), with the server's ffmpeg children, the load generator (`bench.server` or `bench.soak`)
and PostgreSQL summed apart. Beside each, the minor page faults it took a second (pages the kernel
had to map, and zero, for it): a thread that frees its buffers back to the kernel and maps them
again for the next segment shows hundreds. Linux only; it reads /proc and nothing else, so it
costs the machine nothing it measures.

`--trace FILE` also writes one JSON line every `--every` seconds of the window: the cores each part
took in that slice, and what the whole VM's cores did in it (`/proc/stat`: busy, idle, waiting on
I/O, and stolen by the hypervisor), stamped with the wall clock (`wall`). A stretch where every
decode slows down reads there as one of two things: the VM losing its cores (`steal` up, the
server's threads down) or the server's threads waiting on each other (`idle` up, `steal` not).
`bench.timeline` lines the trace up with the benchmark's sentences. Each slice reads every thread's
stat once, a few milliseconds of one core a second with 24 counters' ffmpeg children.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections import Counter
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")

# (pid, tid) -> (label, CPU seconds so far, minor faults so far)
Times = dict[tuple[int, int], tuple[str, float, int]]


def command_lines() -> dict[int, str]:
    lines = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return lines


def server_pid() -> int:
    servers = [pid for pid, line in command_lines().items() if "balto" in line and " serve" in line]
    if not servers:
        raise SystemExit("no running `balto serve` found; pass --pid")
    return min(servers)


def part_of(pid: int, line: str, server: int) -> str | None:
    """Which part of the load a process is: None for one that has nothing to do with it."""
    if pid == server:
        return "server"
    if "ffmpeg" in line:
        return "ffmpeg children"
    if "bench.server" in line or "bench.soak" in line:
        return "load generator"
    if "postgres" in line:
        return "postgres"
    return None


def thread_times(server: int) -> Times:
    """(pid, tid) -> (label, CPU seconds so far, minor faults so far) for the server's threads and
    the other parts."""
    times = {}
    for pid, line in command_lines().items():
        part = part_of(pid, line, server)
        if part is None:
            continue
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            label = f"server: {name}" if part == "server" else part
            # utime + stime, then minflt
            times[(pid, tid)] = (label, (int(fields[11]) + int(fields[12])) / TICKS, int(fields[7]))
    return times


# the fields of /proc/stat's first line, in order, that the trace reports (the rest are folded into busy)
MACHINE_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_times() -> dict[str, float]:
    """Seconds the whole VM's cores spent so far in each state of `MACHINE_FIELDS`."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return {name: int(value) / TICKS for name, value in zip(MACHINE_FIELDS, fields, strict=False)}


def cores_between(before: Times, after: Times, elapsed: float) -> tuple[Counter[str], Counter[str]]:
    """Cores each label took between two readings, and the minor page faults it took a second."""
    cores: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    for key, (label, spent, faulted) in after.items():
        _, spent_before, faulted_before = before.get(key, (label, 0.0, 0))  # a thread born inside: all of it
        cores[label] += (spent - spent_before) / elapsed
        faults[label] += (faulted - faulted_before) / elapsed
    return cores, faults


def machine_between(before: dict[str, float], after: dict[str, float], elapsed: float) -> dict[str, float]:
    """Cores of the whole VM busy, idle, waiting on I/O and stolen between two readings of /proc/stat."""
    spent = {name: (after[name] - before.get(name, 0.0)) / elapsed for name in after}
    busy = sum(value for name, value in spent.items() if name not in ("idle", "iowait", "steal"))
    return {
        "busy": round(busy, 3),
        "idle": round(spent.get("idle", 0.0), 3),
        "iowait": round(spent.get("iowait", 0.0), 3),
        "steal": round(spent.get("steal", 0.0), 3),
    }


def trace_line(
    at: float,
    before: Times,
    after: Times,
    machine_before: dict[str, float],
    machine_after: dict[str, float],
    elapsed: float,
    wall: float | None = None,
) -> str:
    """One slice of `--trace`: seconds into the window, the slice's end on the wall clock (`wall`, Unix
    seconds: what `bench.timeline` lines the benchmark's sentences up with), each label's cores (those
    above 0.001), the VM's."""
    cores, _ = cores_between(before, after, elapsed)
    parts = {label: round(value, 3) for label, value in cores.most_common() if value >= 0.001}
    line: dict[str, object] = {"t": round(at, 1)}
    if wall is not None:
        line["wall"] = round(wall, 2)
    line |= {"cores": parts, "machine": machine_between(machine_before, machine_after, elapsed)}
    return json.dumps(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pid", type=int, help="the server's pid (default: the running `balto serve`)")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds before the window opens")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument(
        "--trace", type=Path, help="also write each slice of the window to this file, one JSON line each"
    )
    parser.add_argument("--every", type=float, default=1.0, help="seconds per slice of --trace")
    args = parser.parse_args()
    time.sleep(args.wait)
    server = args.pid or server_pid()
    before, started = thread_times(server), time.monotonic()
    # Read every `--every` seconds (written out with --trace) until the window ends or the server
    # exits: a reading after its exit has none of its threads, so the table stops at the last one
    # taken while it ran. The table adds up the slices, so a thread or a child that ends inside the
    # window (an ffmpeg child at each counter's close) keeps what it spent up to its last reading.
    after, machine, at = before, machine_times(), started
    spent: Counter[str] = Counter()
    faulted: Counter[str] = Counter()
    exited = False
    with args.trace.open("w") if args.trace else contextlib.nullcontext() as trace:
        while (now := time.monotonic()) - started < args.window:
            time.sleep(min(args.every, args.window - (now - started)))
            if not Path(f"/proc/{server}").exists():
                exited = True
                break
            current, current_machine, now = thread_times(server), machine_times(), time.monotonic()
            slice_cores, slice_faults = cores_between(after, current, 1.0)  # what each label spent in it
            spent.update(slice_cores)
            faulted.update(slice_faults)
            if trace is not None:
                trace.write(trace_line(now - started, after, current, machine, current_machine, now - at, time.time()))
                trace.write("\n")
                trace.flush()
            after, machine, at = current, current_machine, now
    elapsed = at - started
    cores: Counter[str] = Counter({label: value / elapsed for label, value in spent.items()} if elapsed > 0 else {})
    faults: Counter[str] = Counter({label: value / elapsed for label, value in faulted.items()} if elapsed > 0 else {})
    if exited:
        print(f"the server (pid {server}) exited {elapsed:.0f} s into the window: the table covers those seconds")
    print(f"cores over {elapsed:.0f} s, server pid {server} (and minor page faults a second)")
    for label, value in cores.most_common():
        if value >= 0.001:
            print(f"  {label:32s} {value:.3f}  {faults[label]:8.1f}")
    print(f"  {'all of it':32s} {sum(cores.values()):.3f}  {sum(faults.values()):8.1f}")


if __name__ == "__main__":
    main()
