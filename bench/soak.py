"""Soak: the real server under a steady load for a long time, its counters reconnecting now and then
as a shop's pages do, and what drifts meanwhile.

    .venv/bin/python -m bench.soak --counters 12 --minutes 60 [--session-s 300] [--window-s 300]

The same server and counters as `bench.server` (embedded PostgreSQL, the packaged Whisper base int8,
the zero-latency loopback LLM; each counter streams seeded counter-like audio in real time over
/ws), but one level for `--minutes`, and each counter's stream cut into sessions of `--session-s`:
at the end of one the counter says `fim`, waits for the server to close, and connects again 1-3 s
later with a new recording (its first session is shorter, by its place among the counters, so the
reconnects spread over time instead of coming all at once). It measures:

- every `--window-s` of the soak: p50 / p95 / max end of speech -> transcript of the sentences that
  ended in it, and the server's CPU-seconds per audio-second over it: a queue or a cost that creeps
  up shows as a later window worse than the first;
- every `--sample-s`: the server's RSS alone and with its ffmpeg children (PSS every `--pss-every-s`),
  its open file descriptors, threads and asyncio tasks, ffmpeg children, open connections, the
  storage queue and the on-disk journal; and the RSS's growth in MB an hour, fitted over the soak after
  its first window (what the models' and the allocator's warm-up take is not a leak);
- before the load and once it has stopped: what a leak leaves behind (connections, ffmpeg
  children, tasks, descriptors beyond the database pool's);
- nothing lost: every interaction a counter was sent (`transcricao` and `recomendar` frames) is a row
  of `interacoes`, and the rows stored are the rows the server handed to storage (read from its
  database once the load has stopped).

Writes a JSON report and a PNG (RSS and latency over the soak), and prints a table of the windows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from balto.app.container import single_thread_blas
from bench import machine
from bench.audio import build_conversation, real_audio_dir
from bench.frontend import TIMESLICE_S
from bench.server import (
    REPO,
    Counter,
    Server,
    analyse,
    early_starts,
    latency_stats,
    make_pieces,
    scrape,
    segments_heard,
    serving,
    stream_counter,
)

MIN_SESSION_S = 60.0
GAP_S = (1.0, 3.0)  # a page reloading between two sessions


@dataclass
class Sample:
    t: float  # seconds since the load started (the state before it: about 0)
    rss_mb: float  # the server process alone
    rss_with_children_mb: float  # and its ffmpeg children
    pss_mb: float | None  # the server and its children, shared pages split (read less often)
    fds: int
    threads: int
    tasks: int  # asyncio tasks alive in the server's loop
    ffmpeg: int
    connections: int
    storage_queue: int
    journal: int  # interactions journalled to disk, not yet in the database
    db_pool: int
    cpu_s: float  # the server's and its children's CPU seconds so far


def session_lengths(index: int, counters: int, total_s: float, session_s: float) -> list[float]:
    """How long counter `index`'s sessions stream: the first `session_s` * (index + 1) / `counters`
    (at least MIN_SESSION_S), so that the counters reconnect at spread moments, then `session_s` each,
    to `total_s` in all; a remainder shorter than MIN_SESSION_S joins the session before it. With
    `session_s` 0 (or at least `total_s`) one session streams the whole soak."""
    if session_s <= 0 or session_s >= total_s:
        return [total_s]
    lengths: list[float] = []
    left = total_s
    length = max(MIN_SESSION_S, session_s * (index + 1) / counters)
    while left > 0:
        take = left if left - length < MIN_SESSION_S else length
        lengths.append(round(take, 3))
        left -= take
        length = session_s
    return lengths


def sample(server: Server, started: float, with_pss: bool) -> Sample:
    assert server.process is not None
    metrics = scrape(server)
    proc = psutil.Process(server.process.pid)
    cpu, rss_all = server.usage()
    return Sample(
        t=round(time.monotonic() - started, 1),
        rss_mb=round(proc.memory_info().rss / 1e6, 1),
        rss_with_children_mb=round(rss_all / 1e6, 1),
        pss_mb=round(server.pss() / 1e6, 1) if with_pss else None,
        fds=proc.num_fds(),
        threads=proc.num_threads(),
        tasks=int(metrics.get("balto_asyncio_tasks", -1)),
        ffmpeg=int(metrics.get("balto_ffmpeg_processes", -1)),
        connections=int(metrics.get("balto_connections_open", -1)),
        storage_queue=int(metrics.get("balto_storage_queue_depth", -1)),
        journal=int(metrics.get("balto_journal_entries", -1)),
        db_pool=int(metrics.get("balto_db_pool_connections", -1)),
        cpu_s=round(cpu, 2),
    )


def growth_mb_per_hour(samples: list[Sample], after_s: float, field: str = "rss_mb") -> float | None:
    """The least-squares slope of `field` over the samples from `after_s` on, in MB an hour (None with
    fewer than three samples or under a minute of them)."""
    points = [(s.t, getattr(s, field)) for s in samples if s.t >= after_s and getattr(s, field) is not None]
    if len(points) < 3 or points[-1][0] - points[0][0] < 60:
        return None
    t, y = np.array(points, dtype=float).T
    return round(float(np.polyfit(t, y, 1)[0]) * 3600, 1)


def _cpu_at(samples: list[Sample], t: float) -> float | None:
    """The CPU seconds read by the last sample at or before `t`."""
    before = [s.cpu_s for s in samples if s.t <= t]
    return before[-1] if before else None


def windows(
    timeline: list[list[float]],
    streamed: list[tuple[float, float]],
    samples: list[Sample],
    origin: float,
    window_s: float,
    total_s: float,
) -> list[dict[str, Any]]:
    """The soak cut into windows of `window_s` from `origin` (a wall-clock time): each with the
    latency of the sentences whose speech ended in it (`timeline`: bench.server's
    [counter, end of speech, latency] entries), the audio streamed in it (`streamed`: each session's
    wall-clock start and end), and the server's CPU seconds per audio second over it, read off the
    samples (their `t` counts from `origin`)."""
    out = []
    count = max(1, int(np.ceil(total_s / window_s)))
    for k in range(count):
        start, end = k * window_s, min((k + 1) * window_s, total_s)
        latencies = [entry[2] for entry in timeline if start <= entry[1] - origin < end]
        audio = sum(max(0.0, min(b - origin, end) - max(a - origin, start)) for a, b in streamed)
        cpu_start, cpu_end = _cpu_at(samples, start), _cpu_at(samples, end)
        cpu = cpu_end - cpu_start if cpu_start is not None and cpu_end is not None else None
        out.append(
            {
                "from_s": round(start, 1),
                "to_s": round(end, 1),
                "transcript_s": latency_stats(latencies),
                "audio_s": round(audio, 1),
                "server_cpu_s_per_audio_s": round(cpu / audio, 4) if cpu is not None and audio > 0 else None,
            }
        )
    return out


async def stored_uuids(server: Server) -> dict[str, set[str]]:
    """Every row of `interacoes` by balcão: read from the server's embedded PostgreSQL (bench.server
    gives it one in its data dir; pgserver lets a second process share it while the server runs)."""
    import asyncpg

    from balto.adapters.embedded_postgres import EmbeddedPostgres

    database = EmbeddedPostgres(server.data_dir / "pgdata")
    await asyncio.to_thread(database.start)
    try:
        connection = await asyncpg.connect(database.url(driver=None))
        try:
            rows = await connection.fetch("SELECT balcao_id, uuid::text AS uuid FROM interacoes")
        finally:
            await connection.close()
    finally:
        await asyncio.to_thread(database.stop)
    stored: dict[str, set[str]] = {}
    for row in rows:
        stored.setdefault(row["balcao_id"], set()).add(row["uuid"])
    return stored


def nothing_lost(sent: dict[str, set[str]], stored: dict[str, set[str]], handed: int) -> dict[str, Any]:
    """Whether every interaction a counter was sent a frame about is stored (`sent` and `stored` by
    balcão), and whether the rows stored are all those the server handed to storage (`handed`, its
    balto_interactions_total since it started on a fresh database)."""
    missing = {balcao: sorted(ids - stored.get(balcao, set())) for balcao, ids in sent.items()}
    rows = sum(len(ids) for ids in stored.values())
    return {
        "frames_sent_ids": sum(len(ids) for ids in sent.values()),
        "missing_from_database": sum(len(ids) for ids in missing.values()),
        "missing_examples": [i for ids in missing.values() for i in ids][:10],
        "rows_stored": rows,
        "rows_handed_to_storage": handed,
        "ok": not any(missing.values()) and rows == handed,
    }


def _sent_ids(counters: list[Counter]) -> set[str]:
    return {
        str(m["interacao_id"])
        for c in counters
        for _, m in c.events
        if m.get("comando") in ("transcricao", "recomendar") and m.get("interacao_id")
    }


async def counter_sessions(url: str, sessions: list[Counter], first_delay_s: float, seed: int) -> None:
    """One counter's sessions, one after the other, a page reload's gap between them."""
    rng = np.random.default_rng(seed)
    delay = first_delay_s
    for session in sessions:
        await stream_counter(url, session, delay)
        delay = float(rng.uniform(*GAP_S))


async def warm_up(server: Server, first: Counter, seconds: float = 20.0) -> None:
    """One short session before the soak, so that what the server starts at its first segment and
    keeps (Whisper's workers and their dispatch tasks, the speaker thread, the database pool's first
    connection) is in the state the soak starts from, and not counted as left behind by it."""
    conversation = build_conversation(seed=1, duration_s=seconds, source="fixtures", pauses=(0.5, 2.0))
    pieces, chunk_s = make_pieces(conversation, "webm", first.chunk_s)
    await stream_counter(server.url, Counter(-1, first.key, conversation, pieces, chunk_s), 0.0)
    await asyncio.sleep(5.0)


async def soak(
    server: Server,
    per_counter: list[list[Counter]],
    total_s: float,
    sample_s: float,
    pss_every_s: float,
) -> tuple[list[Sample], Sample, Sample, float, dict[str, float], dict[str, float]]:
    """The load, after a warm-up, sampled: (samples, the state before it, the state once it has stopped
    and settled, its origin on the wall clock, the server's metrics before and after)."""
    loop = asyncio.get_running_loop()
    await warm_up(server, per_counter[0][0])
    metrics_before = scrape(server)
    started = time.monotonic()
    origin = time.time()
    before = await asyncio.to_thread(sample, server, started, pss_every_s > 0)
    samples: list[Sample] = []
    stop = asyncio.Event()

    async def sampler() -> None:
        last_pss = -float("inf")
        while not stop.is_set():
            now = time.monotonic()
            with_pss = pss_every_s > 0 and now - last_pss >= pss_every_s
            if with_pss:
                last_pss = now
            samples.append(await loop.run_in_executor(None, sample, server, started, with_pss))
            if len(samples) % max(1, round(60 / sample_s)) == 1:  # a line a minute
                print(_progress(samples[-1], total_s), flush=True)
            with contextlib.suppress(TimeoutError):  # the next sample is due
                await asyncio.wait_for(stop.wait(), sample_s)

    sampling = asyncio.create_task(sampler())
    rng = np.random.default_rng(len(per_counter))
    await asyncio.gather(
        *(
            counter_sessions(server.url, sessions, float(rng.uniform(0, 2.0)), 7000 + i)
            for i, sessions in enumerate(per_counter)
        )
    )
    stop.set()
    await sampling
    await asyncio.sleep(15.0)  # the last segments stored, the children reaped
    after = await asyncio.to_thread(sample, server, started, pss_every_s > 0)
    return samples, before, after, origin, metrics_before, scrape(server)


def _progress(s: Sample, total_s: float) -> str:
    return (
        f"  t={s.t:>7.0f}/{total_s:.0f} s  RSS {s.rss_mb:.0f} MB ({s.rss_with_children_mb:.0f} with children)  "
        f"fds {s.fds}  threads {s.threads}  tasks {s.tasks}  ffmpeg {s.ffmpeg}  connections {s.connections}  "
        f"queue {s.storage_queue}  journal {s.journal}"
    )


def leftovers(before: Sample, after: Sample) -> dict[str, Any]:
    """What the load left behind once it stopped: each gauge after against before, and whether any
    connection, ffmpeg child, stored-but-unwritten row, asyncio task or file descriptor (beyond
    the database pool's, which it keeps on purpose) outlived it."""
    fields = ("connections", "ffmpeg", "storage_queue", "journal", "tasks", "fds", "threads", "db_pool", "rss_mb")
    out: dict[str, Any] = {name: [getattr(before, name), getattr(after, name)] for name in fields}
    fds_beyond_pool = (after.fds - after.db_pool) - (before.fds - before.db_pool)
    out["fds_beyond_pool_grown"] = fds_beyond_pool
    out["clean"] = (
        after.connections == 0
        and after.ffmpeg == 0
        and after.storage_queue == 0
        and after.journal == 0
        and after.tasks <= before.tasks
        and fds_beyond_pool <= 0
    )
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    minutes = [s["t"] / 60 for s in samples]
    fig, (memory, latency) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    memory.plot(minutes, [s["rss_mb"] for s in samples], label="server RSS")
    memory.plot(minutes, [s["rss_with_children_mb"] for s in samples], label="with ffmpeg children")
    pss = [(s["t"] / 60, s["pss_mb"]) for s in samples if s["pss_mb"] is not None]
    if pss:
        memory.plot(*zip(*pss, strict=True), "o", markersize=3, label="PSS (with children)")
    memory.set_ylabel("MB")
    memory.legend()
    memory.set_title(
        f"{report['counters']} counters, {report['minutes']:g} min, sessions of {report['session_s']:g} s "
        f"({report['machine']})",
        fontsize=9,
    )
    middle = [(w["from_s"] + w["to_s"]) / 120 for w in report["windows"]]
    for key in ("p50", "p95", "max"):
        latency.plot(middle, [w["transcript_s"][key] for w in report["windows"]], "o-", label=key)
    latency.axhline(1.5, color="grey", linestyle="--", linewidth=0.8)
    latency.set_ylabel("end of speech -> transcript, s")
    latency.set_xlabel("minutes into the soak")
    latency.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_sessions(
    counters: int, total_s: float, session_s: float, source: str, keys: list[str], timeslice_s: float
) -> list[list[Counter]]:
    """Every counter's sessions, their recordings built (in two threads: ffmpeg encodes each) before
    the load starts, so building them takes nothing from the server meanwhile."""
    plan = [
        (i, k, length)
        for i in range(counters)
        for k, length in enumerate(session_lengths(i, counters, total_s, session_s))
    ]

    def build(entry: tuple[int, int, float]) -> Counter:
        i, k, length = entry
        conversation = build_conversation(
            seed=20_000 + 100 * i + k, duration_s=length, source=source, pauses=(0.5, 8.0), shuffle=True
        )
        pieces, chunk_s = make_pieces(conversation, "webm", timeslice_s)
        return Counter(i, keys[i], conversation, pieces, chunk_s)

    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(build, plan))
    per_counter: list[list[Counter]] = [[] for _ in range(counters)]
    for counter in built:
        per_counter[counter.index].append(counter)
    return per_counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counters", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load lasts")
    parser.add_argument("--session-s", type=float, default=300.0, help="each counter reconnects this often (0: never)")
    parser.add_argument("--window-s", type=float, default=300.0, help="latency and CPU reported per window")
    parser.add_argument("--sample-s", type=float, default=10.0, help="how often the server's gauges are read")
    parser.add_argument(
        "--pss-every-s",
        type=float,
        default=60.0,
        help="how often its PSS is read too (reading the memory maps holds the server's mmap lock; 0: never)",
    )
    parser.add_argument("--source", choices=["auto", "real", "fixtures"], default="auto")
    parser.add_argument("--timeslice-ms", type=int, default=int(TIMESLICE_S * 1000))
    parser.add_argument("--env", action="append", default=[], help="extra server setting, NAME=VALUE")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "measurements" / "bench")
    parser.add_argument("--keep", type=Path, help="keep the server's data dir (database, log) here")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    single_thread_blas()
    total_s = args.minutes * 60
    source = args.source if args.source != "auto" else ("real" if real_audio_dir() else "fixtures")
    extra = dict(item.split("=", 1) for item in args.env)

    with serving(extra, args.counters, args.keep) as (server, keys, _):
        print(f"building the recordings of {args.counters} counters, {args.minutes:g} min each ({source})...")
        per_counter = build_sessions(args.counters, total_s, args.session_s, source, keys, args.timeslice_ms / 1000)
        print(f"{sum(map(len, per_counter))} sessions; the soak starts", flush=True)
        samples, before, after, origin, metrics_before, metrics_after = asyncio.run(
            soak(server, per_counter, total_s, args.sample_s, args.pss_every_s)
        )
        sessions = [c for counter in per_counter for c in counter]
        stored = asyncio.run(stored_uuids(server))
        sent = {f"bench-{i:03d}": _sent_ids(counter) for i, counter in enumerate(per_counter)}
        # Since the server started, on a fresh database (with --keep on an old data dir, its old rows
        # count as stored too): the warm-up's rows are in both.
        handed = int(sum(v for k, v in metrics_after.items() if k.startswith("balto_interactions_total")))

    overall = analyse(sessions)
    streamed = [
        (c.started_at, c.started_at + c.conversation.duration_s) for c in sessions if not c.error and c.started_at
    ]
    audio_s = sum(b - a for a, b in streamed)
    cpu = samples[-1].cpu_s - before.cpu_s if samples else 0.0
    report = {
        "command": "python -m bench.soak " + " ".join(sys.argv[1:]),
        "machine": machine.describe(),
        "source": source,
        "counters": args.counters,
        "minutes": args.minutes,
        "session_s": args.session_s,
        "sessions": len(sessions),
        "failed_sessions": sum(1 for c in sessions if c.error),
        "errors": sorted({c.error for c in sessions if c.error})[:5],
        "end_of_speech_to_transcript_s": overall["end_of_speech_to_transcript_s"],
        "end_of_speech_to_recomendar_s": overall["end_of_speech_to_recomendar_s"],
        "utterances": overall["utterances"],
        "transcribed_fraction": overall["transcribed_fraction"],
        "live_wer": overall["live_wer"],
        "server_cpu_s_per_audio_s": round(cpu / audio_s, 4) if audio_s else None,
        "segments": segments_heard(metrics_before, metrics_after),
        "early_starts": early_starts(metrics_before, metrics_after),
        # The sessions' gaps and the last queue's drain run the soak a little past --minutes.
        "windows": windows(
            overall["transcript_timeline"],
            streamed,
            [before, *samples],
            origin,
            args.window_s,
            max(total_s, samples[-1].t if samples else 0.0),
        ),
        "rss_growth_mb_per_hour": growth_mb_per_hour(samples, args.window_s),
        "rss_with_children_growth_mb_per_hour": growth_mb_per_hour(samples, args.window_s, "rss_with_children_mb"),
        "peak_rss_mb": max((s.rss_mb for s in samples), default=None),
        "peak_pss_mb": max((s.pss_mb for s in samples if s.pss_mb is not None), default=None),
        "leftovers": leftovers(before, after),
        "nothing_lost": nothing_lost(sent, stored, handed),
        "before": asdict(before),
        "after": asdict(after),
        "samples": [asdict(s) for s in samples],
        "transcript_timeline": overall["transcript_timeline"],
    }
    stem = f"soak-{args.counters}x{args.minutes:g}min"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / f"{stem}.png")
    print()
    print(f"{'window':>13} {'sentences':>9} {'p50':>6} {'p95':>6} {'max':>6} {'CPU-s/audio-s':>14}")
    for w in report["windows"]:
        t = w["transcript_s"]
        window = f"{w['from_s'] / 60:.1f}-{w['to_s'] / 60:.1f} min"
        print(
            f"{window:>13} {t['n']:>9} {t['p50']!s:>6} {t['p95']!s:>6} {t['max']!s:>6} "
            f"{w['server_cpu_s_per_audio_s']!s:>14}"
        )
    whole = report["end_of_speech_to_transcript_s"]
    print(
        f"whole soak: p50 {whole['p50']} p95 {whole['p95']} max {whole['max']} over {whole['n']} sentences; "
        f"transcribed {report['transcribed_fraction']}; live WER {report['live_wer']}; "
        f"CPU-s/audio-s {report['server_cpu_s_per_audio_s']}; failed sessions {report['failed_sessions']} "
        f"of {report['sessions']}"
    )
    print(
        f"RSS peak {report['peak_rss_mb']} MB (PSS with children {report['peak_pss_mb']} MB); growth after the "
        f"first window {report['rss_growth_mb_per_hour']} MB/h "
        f"({report['rss_with_children_growth_mb_per_hour']} with children)"
    )
    print(f"left behind: {report['leftovers']}")
    print(f"nothing lost: {report['nothing_lost']}")
    print(f"report: {args.out / (stem + '.json')}  plot: {args.out / (stem + '.png')}")


if __name__ == "__main__":
    main()
