"""In-memory fakes: real classes implementing the ports, storing copies, for unit and contract tests."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable

import numpy as np

from balto.domain.interaction import (
    Feedback,
    IaStatus,
    Interaction,
    RecommendationRequest,
    RecommendationResult,
    Suggestion,
    Transcript,
)
from balto.domain.keys import ApiKey, generate_key, hash_key, key_prefix
from balto.domain.speaker import SpeakerMatch
from balto.domain.vad import FRAME_SAMPLES, frame_rms
from balto.ports.audio import SpeechDetector
from balto.ports.inference import Recommender, SpeakerIdentifier, Transcriber
from balto.ports.storage import ApiKeyRepository, FeedbackRepository, InteractionRepository
from balto.ports.system import Clock


class FakeClock(Clock):
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class InMemoryInteractionRepository(InteractionRepository):
    def __init__(self) -> None:
        self._rows: dict[str, Interaction] = {}
        self._next_id = 1

    async def add(self, interaction: Interaction) -> int:
        existing = self._rows.get(interaction.uuid)
        if existing is not None:
            interaction.id = existing.id
            return existing.id  # type: ignore[return-value]
        stored = copy.deepcopy(interaction)
        stored.id = self._next_id
        self._next_id += 1
        self._rows[stored.uuid] = stored
        interaction.id = stored.id
        return stored.id

    async def get(self, uuid: str) -> Interaction | None:
        row = self._rows.get(uuid)
        return copy.deepcopy(row) if row else None

    async def list_recent(self, balcao_id: str | None = None, limit: int = 50) -> list[Interaction]:
        rows = sorted(self._rows.values(), key=lambda r: r.id or 0, reverse=True)
        if balcao_id is not None:
            rows = [r for r in rows if r.balcao_id == balcao_id]
        return [copy.deepcopy(r) for r in rows[:limit]]

    @property
    def rows(self) -> list[Interaction]:
        return sorted((copy.deepcopy(r) for r in self._rows.values()), key=lambda r: r.id or 0)


class InMemoryFeedbackRepository(FeedbackRepository):
    def __init__(self) -> None:
        self._rows: list[Feedback] = []

    async def add(self, feedback: Feedback) -> int:
        stored = copy.deepcopy(feedback)
        stored.id = len(self._rows) + 1
        stored.created_at = time.time()
        self._rows.append(stored)
        feedback.id, feedback.created_at = stored.id, stored.created_at
        return stored.id

    async def list_for(self, interacao_uuid: str) -> list[Feedback]:
        return [copy.deepcopy(f) for f in self._rows if f.interacao_uuid == interacao_uuid]

    @property
    def rows(self) -> list[Feedback]:
        return [copy.deepcopy(f) for f in self._rows]


class InMemoryApiKeyRepository(ApiKeyRepository):
    def __init__(self) -> None:
        self._keys: dict[str, tuple[ApiKey, str]] = {}

    async def create(self, balcao_id: str) -> tuple[ApiKey, str]:
        if not balcao_id.strip():
            raise ValueError("balcao_id must not be empty")
        plain = generate_key()
        key = ApiKey(id=len(self._keys) + 1, balcao_id=balcao_id, prefix=key_prefix(plain), created_at=time.time())
        self._keys[hash_key(plain)] = (key, hash_key(plain))
        return key, plain

    async def resolve(self, plain_key: str) -> ApiKey | None:
        found = self._keys.get(hash_key(plain_key))
        if found is None or found[0].revoked:
            return None
        return found[0]

    async def revoke(self, key_id: int) -> bool:
        for digest, (key, _) in self._keys.items():
            if key.id == key_id and not key.revoked:
                self._keys[digest] = (ApiKey(key.id, key.balcao_id, key.prefix, True, key.created_at), digest)
                return True
        return False

    async def list(self) -> list[ApiKey]:
        return sorted((k for k, _ in self._keys.values()), key=lambda k: k.id)


class FakeTranscriber(Transcriber):
    """Returns scripted texts in order (or a function of the segment), recording every call."""

    def __init__(
        self,
        texts: list[str] | Callable[[np.ndarray], str] | None = None,
        delay_s: float = 0.0,
        name: str = "fake",
    ) -> None:
        self._texts = texts if texts is not None else []
        self.calls: list[np.ndarray] = []
        self.delay_s = delay_s
        self.fail_next = 0
        self.fail_always = False
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        from balto.ports.inference import TranscriptionError

        self.calls.append(pcm.copy())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_always or self.fail_next:
            self.fail_next = max(0, self.fail_next - 1)
            raise TranscriptionError(f"{self._name}: scripted failure")
        text = self._texts(pcm) if callable(self._texts) else self._texts.pop(0) if self._texts else ""
        return Transcript(text=text, language=language, confidence=0.9, provider=self.name, latency_ms=1.0)


class FakeRecommender(Recommender):
    """Answers with scripted results; `gate` lets a test hold a call in flight."""

    def __init__(self, results: list[RecommendationResult] | None = None) -> None:
        self.results = results or []
        self.requests: list[RecommendationRequest] = []
        self.gate: asyncio.Event | None = None

    @property
    def name(self) -> str:
        return "fake"

    async def recommend(self, request: RecommendationRequest) -> RecommendationResult:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.results:
            return self.results.pop(0)
        return ok("Ofereça um analgésico")


def ok(*texts: str) -> RecommendationResult:
    return RecommendationResult(
        IaStatus.OK, tuple(Suggestion(t) for t in texts), raw=json.dumps({"sugestoes": list(texts)}), provider="fake"
    )


class EnergySpeechDetector(SpeechDetector):
    """Voiced when the frame is louder than a fixed RMS: deterministic stand-in for webrtcvad."""

    def __init__(self, threshold: float = 300.0) -> None:
        self.threshold = threshold

    def is_voiced(self, frame: np.ndarray) -> bool:
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"expected a frame of {FRAME_SAMPLES} samples, got {frame.shape}")
        return frame_rms(frame) > self.threshold


class FakeSpeakerIdentifier(SpeakerIdentifier):
    def __init__(self, match: SpeakerMatch) -> None:
        self.match = match

    async def add_segment(self, pcm: np.ndarray, balcao_id: str) -> SpeakerMatch:
        return self.match
