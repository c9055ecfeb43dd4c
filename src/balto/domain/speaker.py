"""Speaker identification rules: enrolled voice profiles, scores turned into probabilities with an
explicit unknown class, and the online clustering that tells unknown voices apart on one connection.

Pure: embeddings come in as numpy vectors (whatever model made them), matches come out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

UNKNOWN = "desconhecido"
# An unknown voice at a counter whose attendants are enrolled is, in practice, a customer.
UNKNOWN_ROLE = "cliente"
# Without any enrolled voice there is nothing to tell roles by: unknown voices are only numbered.
ANONYMOUS_PREFIX = "voz"


class EmbeddingError(ValueError):
    """A vector that cannot be a speaker embedding (empty, zero, not finite, wrong size)."""


def unit(vector: np.ndarray | Sequence[float]) -> np.ndarray:
    """The vector scaled to length 1, as float32; cosine similarity is then a dot product."""
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(v)) if v.size else 0.0
    if v.size == 0 or not math.isfinite(norm) or norm == 0.0:
        raise EmbeddingError("an embedding must be a non-empty, finite, non-zero vector")
    return (v / norm).astype(np.float32)


def average_embedding(embeddings: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The unit mean of unit embeddings, each weighted (by seconds of speech, or samples already averaged)."""
    if not embeddings:
        raise EmbeddingError("nothing to average")
    stacked = np.stack([unit(e) for e in embeddings]).astype(np.float64)
    w = np.ones(len(embeddings)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(embeddings),) or (w <= 0).any():
        raise EmbeddingError("one positive weight per embedding")
    return unit((stacked * w[:, None]).sum(axis=0))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(unit(a), unit(b)))


@dataclass(frozen=True)
class Voice:
    """A segment's voice as the embedder heard it: what identification compares with the profiles."""

    embedding: np.ndarray
    duration_s: float


@dataclass(frozen=True)
class SpeakerScore:
    id: str
    name: str | None
    role: str | None
    score: float
    prob: float


@dataclass(frozen=True)
class SpeakerMatch:
    """Who is speaking in a segment: the best candidate and every candidate's probability.

    `probabilities` is sorted by probability, highest first, and includes the unknown class (id
    `desconhecido`) whenever identification ran. When a voice matches no profile the unknown class
    wins; its `name` is then the connection's label for that voice (`cliente_1`, `cliente_2`, ...).
    """

    top_id: str | None
    score: float
    probabilities: tuple[SpeakerScore, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            [
                {"id": p.id, "nome": p.name, "papel": p.role, "score": round(p.score, 4), "prob": round(p.prob, 4)}
                for p in self.probabilities
            ],
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, data: str) -> SpeakerMatch:
        items = json.loads(data)
        scores = tuple(
            SpeakerScore(str(i["id"]), i.get("nome"), i.get("papel"), float(i["score"]), float(i["prob"]))
            for i in items
        )
        if not scores:
            return cls(None, 0.0, ())
        top = max(scores, key=lambda s: s.prob)
        return cls(top.id, top.score, scores)

    @property
    def top(self) -> SpeakerScore | None:
        for p in self.probabilities:
            if p.id == self.top_id:
                return p
        return None

    @property
    def top_role(self) -> str | None:
        top = self.top
        return None if top is None else top.role

    @property
    def top_name(self) -> str | None:
        top = self.top
        return None if top is None else top.name

    @property
    def top_prob(self) -> float | None:
        top = self.top
        return None if top is None else top.prob

    @property
    def is_unknown(self) -> bool:
        return self.top_id == UNKNOWN

    def naming_unknown(self, name: str) -> SpeakerMatch:
        """This match with the unknown class named (the connection's label for an unenrolled voice)."""
        renamed = tuple(replace(p, name=name) if p.id == UNKNOWN else p for p in self.probabilities)
        return replace(self, probabilities=renamed)


@dataclass
class SpeakerProfile:
    """An enrolled voice: the mean embedding of its samples, and who it belongs to."""

    name: str
    role: str | None
    embedding: np.ndarray
    balcao_id: str | None = None  # None: recognised at every counter
    samples: int = 1
    id: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    embedder: str = ""  # the model that made the embedding; profiles of another model are not comparable


@dataclass(frozen=True)
class Calibration:
    """How cosine similarities become probabilities, with an explicit unknown class.

    Every enrolled profile p gets the logit s_p / temperature; the unknown class gets
    threshold(d) / temperature, where d is the segment's duration. A softmax over all of them gives
    the probabilities, so the unknown class wins exactly when no profile scores above the threshold,
    and at a score equal to the threshold the voice is as likely unknown as it is that profile.

    The threshold grows with the segment's duration because the encoders average their frames:
    longer segments score higher against every profile, the right one and the wrong ones. It moves
    by `slope` per doubling of duration around `reference_s`, with durations clamped to
    [min_s, max_s] where it was measured. The defaults are Resemblyzer's, measured on real
    Portuguese speakers (docs/speaker-id.md, `make bench-speakers`).
    """

    threshold: float = 0.685
    slope: float = 0.04
    temperature: float = 0.0126
    reference_s: float = 2.0
    min_s: float = 1.0
    max_s: float = 6.0

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {self.threshold}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.min_s <= self.reference_s <= self.max_s:
            raise ValueError("durations must satisfy 0 < min_s <= reference_s <= max_s")

    def threshold_for(self, duration_s: float) -> float:
        clamped = min(max(duration_s, self.min_s), self.max_s)
        return self.threshold + self.slope * math.log2(clamped / self.reference_s)

    def match(
        self,
        candidates: Sequence[tuple[SpeakerProfile, float]],
        duration_s: float,
        unknown_role: str | None = UNKNOWN_ROLE,
    ) -> SpeakerMatch:
        """The match for one segment, given every usable profile's cosine similarity to it."""
        threshold = self.threshold_for(duration_s)
        scores = np.array([score for _, score in candidates] + [threshold], dtype=np.float64)
        logits = scores / self.temperature
        exp = np.exp(logits - logits.max())
        probs = exp / exp.sum()
        entries = [
            SpeakerScore(str(profile.id), profile.name, profile.role, float(score), float(prob))
            for (profile, score), prob in zip(candidates, probs[:-1], strict=True)
        ]
        entries.append(SpeakerScore(UNKNOWN, None, unknown_role, threshold, float(probs[-1])))
        # Ties (equal probabilities) go to the unknown class: a profile must score above the threshold.
        entries.sort(key=lambda e: (-e.prob, e.id != UNKNOWN))
        top = entries[0]
        return SpeakerMatch(top.id, top.score, tuple(entries))


@dataclass
class UnknownVoices:
    """Tells apart, online, the voices of one connection that match no enrolled profile.

    Each voice is the running mean of the embeddings assigned to it. A new embedding joins the
    closest voice when its cosine to that voice's mean reaches `threshold`, else it starts a new
    voice; past `max_voices` it joins the closest one anyway, so memory stays bounded.
    """

    threshold: float = 0.64
    max_voices: int = 16
    _sums: list[np.ndarray] = field(default_factory=list)
    _counts: list[int] = field(default_factory=list)

    def assign(self, embedding: np.ndarray) -> int:
        """The voice number (1, 2, ...) for this embedding; updates that voice's mean."""
        e = unit(embedding).astype(np.float64)
        if self._sums:
            sims = [float(np.dot(s, e)) / float(np.linalg.norm(s)) for s in self._sums]
            best = int(np.argmax(sims))
            if sims[best] >= self.threshold or len(self._sums) >= self.max_voices:
                self._sums[best] = self._sums[best] + e
                self._counts[best] += 1
                return best + 1
        self._sums.append(e.copy())
        self._counts.append(1)
        return len(self._sums)

    @property
    def voices(self) -> int:
        return len(self._sums)


def unknown_label(number: int, role: str | None) -> str:
    return f"{role or ANONYMOUS_PREFIX}_{number}"


# -- enrollment ------------------------------------------------------------------------------------


class EnrollmentError(ValueError):
    """Audio that cannot make a voice profile (silent, too short); the message says what to do."""


ROLE_PATTERN = "lower-case letters, digits and _ (e.g. atendente, cliente, gerente)"


def normalise_role(role: str) -> str:
    value = role.strip().lower()
    if not value or not all(c.isalnum() or c == "_" for c in value) or not value.isascii():
        raise EnrollmentError(f"role {role!r} is not valid: use {ROLE_PATTERN}")
    return value


@dataclass(frozen=True)
class EnrollmentPolicy:
    """How much speech a profile needs. The accuracy in docs/speaker-id.md was measured with 10-20 s."""

    min_speech_per_file_s: float = 0.5
    min_total_speech_s: float = 5.0
    recommended_speech_s: float = 10.0

    def check(self, speech_s: Sequence[tuple[str, float]]) -> list[str]:
        """Raise EnrollmentError for silent files or too little speech; return warnings otherwise."""
        if not speech_s:
            raise EnrollmentError("no audio given: pass at least one recording of the speaker")
        silent = [name for name, seconds in speech_s if seconds < self.min_speech_per_file_s]
        if silent:
            raise EnrollmentError(
                f"no speech found in {', '.join(silent)} (silent, too quiet or shorter than "
                f"{self.min_speech_per_file_s:g} s of speech); record the speaker talking"
            )
        total = sum(seconds for _, seconds in speech_s)
        if total < self.min_total_speech_s:
            raise EnrollmentError(
                f"only {total:.1f} s of speech in total; a profile needs at least {self.min_total_speech_s:g} s "
                f"({self.recommended_speech_s:g}-20 s recommended)"
            )
        if total < self.recommended_speech_s:
            return [f"{total:.1f} s of speech: identification is more reliable with 10-20 s"]
        return []


def speech_seconds(
    pcm: np.ndarray, is_voiced: Callable[[np.ndarray], bool], frame_samples: int, rate: int, min_rms: float
) -> float:
    """Seconds of `pcm` in frames a speech detector calls voiced and louder than `min_rms`."""
    voiced = 0
    for offset in range(0, pcm.size - frame_samples + 1, frame_samples):
        frame = pcm[offset : offset + frame_samples]
        if float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) > min_rms and is_voiced(frame):
            voiced += 1
    return voiced * frame_samples / rate
