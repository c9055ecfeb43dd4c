"""Prometheus metrics for GET /metrics, in the text exposition format (version 0.0.4), hand-written:
a few counters, gauges and histograms with labels need no client library.

Besides what the server counts, each scrape samples the process: resident memory, open file
descriptors, asyncio tasks and live ffmpeg children, which is how leaks are checked from outside.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from balto.domain.interaction import IaStatus, Interaction

# Seconds: a transcription or an LLM call takes from tens of milliseconds to the provider's deadline.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = (
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"'
        for k, v in labels
    )
    return "{" + ",".join(escaped) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class Counter:
    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(labels)} {_number(value)}"


@dataclass
class Gauge:
    name: str
    help: str
    read: Callable[[], float] | None = None  # sampled at scrape time
    value: float = 0.0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def render(self) -> Iterable[str]:
        value = self.read() if self.read is not None else self.value
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        yield f"{self.name} {_number(value)}"


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[Labels, tuple[list[int], list[float]]] = field(default_factory=dict)  # counts, [sum, count]

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts, totals = self.series.setdefault(key, ([0] * len(self.buckets), [0.0, 0.0]))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        totals[0] += value
        totals[1] += 1

    def count(self, **labels: str) -> int:
        series = self.series.get(tuple(sorted(labels.items())))
        return 0 if series is None else int(series[1][1])

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, (counts, (total, count)) in sorted(self.series.items()):
            for bound, n in zip(self.buckets, counts, strict=True):
                yield f"{self.name}_bucket{_labels((*labels, ('le', _number(bound))))} {n}"
            yield f"{self.name}_bucket{_labels((*labels, ('le', '+Inf')))} {int(count)}"
            yield f"{self.name}_sum{_labels(labels)} {_number(total)}"
            yield f"{self.name}_count{_labels(labels)} {int(count)}"


def resident_memory_bytes() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return float(pages * os.sysconf("SC_PAGE_SIZE"))


def open_fds() -> float:
    try:
        return float(len(os.listdir("/proc/self/fd")))
    except OSError:
        return float("nan")


def ffmpeg_children() -> float:
    """Live (or unreaped) child processes of this server whose command is ffmpeg."""
    me, found = str(os.getpid()), 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return float("nan")
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis.
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        ppid = stat[stat.rfind(")") + 2 :].split()[1]
        if ppid == me and "ffmpeg" in comm:
            found += 1
    return float(found)


def asyncio_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # no running loop (a scrape always has one; tests may not)
        return 0.0


class Metrics:
    """Every metric the server exports; one instance per app."""

    def __init__(self) -> None:
        self.connections_open = Gauge("balto_connections_open", "Counter connections past the handshake, now.")
        self.connections = Counter("balto_connections_total", "Connections accepted past the handshake.")
        self.segments = Counter("balto_segments_total", "Speech segments the VAD cut and the server processed.")
        self.early_starts = Counter(
            "balto_early_starts_total",
            "Segments heard during the VAD's hang-over, counted when their connection ends: "
            "usado (the segment closed as heard) or descartado (speech came back first).",
        )
        # Read from the server's EarlyStartTiming (VAD_EARLY_START_MEASURED); absent without one.
        self.early_start_ms = Gauge(
            "balto_early_start_silence_ms",
            "Silence into a pause at which a segment is heard early now: the hang-over minus the median "
            "measured hearing, never before VAD_EARLY_START_MS.",
        )
        # Read from the server's voice timing (the same setting); absent without one.
        self.voice_start_ms = Gauge(
            "balto_voice_start_silence_ms",
            "Silence into a pause at which an early hearing works out the speaker's voice now: the "
            "hang-over minus VOICE_MEDIANS_BEFORE_CLOSE times the median measured voice, never before "
            "VAD_EARLY_START_MS.",
        )
        self.stt_decodes_stopped = Counter(
            "balto_stt_decodes_stopped_total",
            "Local Whisper decodes whose caller gave up while they ran (mostly dropped early starts), "
            "stopped after the encoder, before the decoder.",
        )
        self.stt_batches = Counter(
            "balto_stt_batches_total",
            "Local Whisper calls that decoded segments of several connections together (STT_BATCH).",
        )
        self.stt_batched_segments = Counter(
            "balto_stt_batched_segments_total", "Segments local Whisper decoded in those batched calls."
        )
        # Set by local Whisper once it has timed a decode; absent before (and with vendors only).
        self.stt_decode_s = Gauge(
            "balto_stt_decode_seconds",
            "Median wall time of local Whisper's last 32 lone decodes: one decode, for STT_BATCH's "
            "rule (a queue k decodes behind is decoded up to k + 1 at a time).",
        )
        self.interactions = Counter("balto_interactions_total", "Interaction rows handed to storage, by origin.")
        self.stt_latency = Histogram("balto_stt_latency_seconds", "Transcription latency by provider.")
        self.llm_latency = Histogram("balto_llm_latency_seconds", "LLM call latency by provider and status.")
        self.errors = Counter("balto_errors_total", "Errors sent to clients and connections refused, by code.")
        self.closes = Counter("balto_ws_closes_total", "WebSocket close codes the server sent.")
        self.queue_depth = Gauge("balto_storage_queue_depth", "Interactions waiting in the write queue.")
        self.journal_entries = Gauge("balto_journal_entries", "Interactions journalled to disk, not yet in the DB.")
        self.journal_bytes = Gauge("balto_journal_bytes", "Size of the local journal file.")
        self.storage_failures = Counter("balto_storage_failures_total", "Failed database writes (then journalled).")
        # Pooled database connections are file descriptors kept on purpose: leak checks subtract them.
        self.db_pool = Gauge("balto_db_pool_connections", "Database connections held by the pool (idle and in use).")
        self.process: list[Gauge] = [
            Gauge("balto_process_resident_memory_bytes", "Resident set size of the server.", resident_memory_bytes),
            Gauge("balto_process_open_fds", "Open file descriptors of the server.", open_fds),
            Gauge("balto_asyncio_tasks", "asyncio tasks alive in the server's loop.", asyncio_tasks),
            Gauge("balto_ffmpeg_processes", "ffmpeg decoder children alive.", ffmpeg_children),
        ]

    def observe_interaction(self, interaction: Interaction) -> None:
        """Count a finished cycle: its segment, and the latency of the providers that served it."""
        if interaction.segmento_inicio is not None:
            self.segments.inc()
            self.interactions.inc(origem="segmento")
        else:
            self.interactions.inc(origem="timer")
        if interaction.stt_latency_ms is not None:
            self.stt_latency.observe(
                interaction.stt_latency_ms / 1000,
                provider=interaction.stt_provider or "desconhecido",
                status=str(interaction.stt_status or "ok"),
            )
        if interaction.ia_status is not IaStatus.NOT_CALLED and interaction.ts_ai_req and interaction.ts_ai_resp:
            self.llm_latency.observe(
                interaction.ts_ai_resp - interaction.ts_ai_req,
                provider=interaction.ia_provider or "desconhecido",
                status=str(interaction.ia_status),
            )

    def whisper_batched(self, segments: int) -> None:
        """Local Whisper decoded `segments` of several connections in one call."""
        self.stt_batches.inc()
        self.stt_batched_segments.inc(segments)

    def storage_changed(self, storage: Any) -> None:
        """The write queue's depth and the journal's size (a DurableInteractions calls this)."""
        self.queue_depth.set(storage.depth)
        self.journal_entries.set(storage.journal.entries)
        self.journal_bytes.set(storage.journal.size_bytes)
        self.storage_failures.values[()] = float(storage.failures)

    def render(self) -> str:
        metrics: list[Counter | Gauge | Histogram] = [
            self.connections_open,
            self.connections,
            self.segments,
            self.early_starts,
            *([self.early_start_ms] if self.early_start_ms.read is not None else []),
            *([self.voice_start_ms] if self.voice_start_ms.read is not None else []),
            self.stt_decodes_stopped,
            self.stt_batches,
            self.stt_batched_segments,
            *([self.stt_decode_s] if self.stt_decode_s.value else []),
            self.interactions,
            self.stt_latency,
            self.llm_latency,
            self.errors,
            self.closes,
            self.queue_depth,
            self.journal_entries,
            self.journal_bytes,
            self.storage_failures,
            self.db_pool,
            *self.process,
        ]
        return "\n".join(line for metric in metrics for line in metric.render()) + "\n"


def parse(text: str) -> dict[str, float]:
    """A scrape's samples by their full name (labels included): for tests and quick checks."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
