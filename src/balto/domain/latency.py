"""Latency of each stage of a cycle, read from an interaction's ts_* stamps, and its distribution."""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from balto.domain.interaction import Interaction


@dataclass(frozen=True)
class Stage:
    """The time between two stamps of a row. `start` lists stamps in order of preference: the first
    one the row has is used (the playbook card follows the transcript frame when there is one, else
    the transcript itself)."""

    name: str
    label: str  # Portuguese, for the console
    start: tuple[str, ...]
    end: str


# In the order a cycle runs through them, so they stack into the cycle's whole latency.
STAGES: tuple[Stage, ...] = (
    Stage("fila", "Fila até a transcrição", ("ts_segment_closed",), "ts_trans_req"),
    Stage("transcricao", "Transcrição (STT)", ("ts_trans_req",), "ts_trans_resp"),
    Stage("envio_transcricao", "Envio da transcrição", ("ts_trans_resp",), "ts_trans_sent"),
    Stage("playbook", "Cartão do playbook", ("ts_trans_sent", "ts_trans_resp"), "ts_playbook_sent"),
    Stage("ia", "Resposta da IA (LLM)", ("ts_ai_req",), "ts_ai_resp"),
    Stage("envio_recomendacao", "Envio da sugestão da IA", ("ts_ai_resp",), "ts_rec_sent"),
)

# What the attendant waits for: from the moment the VAD closed the segment (the speaker stopped) to
# what shows up on the counter's screen.
END_TO_END: tuple[Stage, ...] = (
    Stage("ate_transcricao", "Fim da fala → transcrição na tela", ("ts_segment_closed",), "ts_trans_sent"),
    Stage("ate_playbook", "Fim da fala → cartão do playbook", ("ts_segment_closed",), "ts_playbook_sent"),
    Stage("ate_ia", "Fim da fala → sugestão da IA", ("ts_segment_closed",), "ts_rec_sent"),
)

# Not a latency: how long the speech lasted, plus the VAD's hang-over before it closed the segment.
SPEECH = Stage("fala", "Fala até o VAD fechar o segmento", ("ts_audio_received",), "ts_segment_closed")


def duration_ms(interaction: Interaction, stage: Stage) -> float | None:
    """Milliseconds between the stage's stamps, or None when the row lacks either (the stage did not
    run in that cycle: no card, no LLM call, a client that did not ask for transcripts)."""
    end = getattr(interaction, stage.end)
    start = next((value for name in stage.start if (value := getattr(interaction, name)) is not None), None)
    if start is None or end is None:
        return None
    return max(0.0, (end - start) * 1000.0)


def durations_ms(interaction: Interaction) -> dict[str, float | None]:
    """Every stage, end-to-end measure and the speech length of one row, by name, rounded to 0.1 ms."""
    out: dict[str, float | None] = {}
    for stage in (*STAGES, *END_TO_END, SPEECH):
        value = duration_ms(interaction, stage)
        out[stage.name] = None if value is None else round(value, 1)
    return out


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on an already sorted sequence."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    position = (len(sorted_values) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None


def summarize(values: Iterable[float | None]) -> Summary:
    present = sorted(v for v in values if v is not None)
    if not present:
        return Summary(0, None, None, None, None, None)
    return Summary(
        count=len(present),
        p50=percentile(present, 0.5),
        p90=percentile(present, 0.9),
        p99=percentile(present, 0.99),
        max=present[-1],
        mean=sum(present) / len(present),
    )


@dataclass(frozen=True)
class Histogram:
    """`counts[i]` values fell in [edges[i], edges[i+1]); the last bucket also takes everything above."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


def nice_step(span: float, buckets: int) -> float:
    """A bucket width of 1, 2 or 5 times a power of ten, so that `buckets` of them cover `span`."""
    if span <= 0:
        return 1.0
    raw = span / buckets
    power = 10 ** math.floor(math.log10(raw))
    return next(power * m for m in (1, 2, 5, 10) if power * m >= raw)


def histogram(values: Iterable[float | None], buckets: int = 12) -> Histogram:
    """Equal buckets from 0 to (about) the largest value; empty when there are no values."""
    present = [v for v in values if v is not None]
    if not present:
        return Histogram((), ())
    step = nice_step(max(present), buckets)
    count = max(1, min(buckets, math.ceil(max(present) / step + 1e-9)))
    counts = [0] * count
    for value in present:
        counts[min(count - 1, int(value // step))] += 1
    return Histogram(tuple(round(step * i, 6) for i in range(count + 1)), tuple(counts))


class RecentTimes:
    """The median of the last `window` durations of a recurring step: what it takes now, as the
    machine's load changes (the early start's hearing, a lone Whisper decode)."""

    def __init__(self, window: int) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self.median: float | None = None  # None until one was observed

    def observe(self, value: float) -> float:
        self._recent.append(value)
        self.median = statistics.median(self._recent)
        return self.median
