"""Speaker identification values: a match against enrolled voice profiles, and the profiles."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

UNKNOWN = "desconhecido"


@dataclass(frozen=True)
class SpeakerScore:
    id: str
    name: str | None
    role: str | None
    score: float
    prob: float


@dataclass(frozen=True)
class SpeakerMatch:
    """Who is speaking in a segment: the best candidate and every candidate's probability."""

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
    def top_role(self) -> str | None:
        for p in self.probabilities:
            if p.id == self.top_id:
                return p.role
        return None


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
