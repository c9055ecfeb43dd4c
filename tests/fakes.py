"""In-memory fakes: real classes implementing the ports, storing copies, for unit and contract tests."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from concurrent.futures import Future

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
from balto.domain.speaker import EmbeddingError, SpeakerMatch, SpeakerProfile, Voice, unit
from balto.domain.vad import FRAME_SAMPLES, frame_rms
from balto.ports.audio import SpeechDetector
from balto.ports.inference import Recommender, SpeakerEmbedder, SpeakerIdentifier, SpeechStream, Transcriber
from balto.ports.storage import ApiKeyRepository, FeedbackRepository, InteractionRepository, SpeakerProfileRepository
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


class FakeSpeechStream(SpeechStream):
    """A speech model over one stream: each complete 512-sample window's probability is
    `voice(first_sample_of_the_window)`; answers at once. `fail`: every feed's future fails."""

    def __init__(self, voice: Callable[[int], float], fail: bool = False) -> None:
        self._voice = voice
        self.fail = fail
        self.fed = 0  # samples fed
        self.calls = 0
        self._windows = 0

    @property
    def window_samples(self) -> int:
        return 512

    def feed(self, pcm: np.ndarray) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        if self.fail:
            future.set_exception(RuntimeError("scripted stream failure"))
            return future
        self.fed += pcm.size
        self.calls += 1
        complete = self.fed // 512
        future.set_result(np.array([self._voice(w * 512) for w in range(self._windows, complete)], dtype=np.float32))
        self._windows = complete
        return future


class FakeSpeechGate:
    """Per-segment verdicts in order (True: speech), as probabilities of 32 ms frames; records calls."""

    def __init__(self, verdicts: list[bool], fail: bool = False) -> None:
        self._verdicts = list(verdicts)
        self.calls = 0
        self.fail = fail

    @property
    def name(self) -> str:
        return "fake-gate"

    @property
    def frame_ms(self) -> float:
        return 32.0

    async def speech_probabilities(self, pcm: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail:
            raise RuntimeError("scripted gate failure")
        speech = self._verdicts.pop(0) if self._verdicts else True
        frames = max(1, pcm.size // 512)
        return np.full(frames, 0.9 if speech else 0.1, dtype=np.float32)


class FakeSpeakerIdentifier(SpeakerIdentifier):
    """Hears every segment (its size stands in for the embedding) and says it was `match`."""

    def __init__(self, match: SpeakerMatch) -> None:
        self.match = match
        self.listened: list[int] = []  # sizes of the segments embedded, early ones included
        self.calls: list[tuple[int, str]] = []  # (size, balcao) of the segments identified

    async def listen(self, pcm: np.ndarray) -> Voice | None:
        self.listened.append(pcm.size)
        return Voice(np.array([float(pcm.size)], dtype=np.float32), pcm.size / 16_000)

    async def identify(self, voice: Voice, balcao_id: str) -> SpeakerMatch:
        self.calls.append((int(voice.embedding[0]), balcao_id))
        return self.match


class FakeSpeakerEmbedder(SpeakerEmbedder):
    """The long-term average spectrum: 24 log-energy bands over 60-4000 Hz, centred, unit length.

    A real (if crude) voice feature, deterministic and instant: the same recording always gives the
    same vector, and voices of different pitch and timbre point different ways. `calls` counts the
    segments embedded.
    """

    BANDS = 24

    def __init__(self, name: str = "fake-ltas") -> None:
        self._name = name
        self.calls = 0
        edges = np.geomspace(60.0, 4000.0, self.BANDS + 1)
        self._edges = np.round(edges / (16_000 / 512)).astype(int)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self.BANDS

    def embed(self, pcm: np.ndarray) -> np.ndarray:
        if pcm.ndim != 1 or pcm.size < 512:
            raise EmbeddingError(f"expected at least 512 mono samples, got shape {pcm.shape}")
        if not np.any(pcm):
            raise EmbeddingError("silent audio has no voice to embed")
        self.calls += 1
        frames = np.lib.stride_tricks.sliding_window_view(pcm.astype(np.float64) / 32768.0, 512)[::256]
        power = (np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)) ** 2).mean(axis=0)
        bands = np.array([power[a:b].sum() for a, b in zip(self._edges[:-1], self._edges[1:], strict=True)])
        log_bands = np.log10(bands + 1e-10)
        return unit(log_bands - log_bands.mean())


class InMemorySpeakerProfileRepository(SpeakerProfileRepository):
    def __init__(self) -> None:
        self._profiles: dict[str, SpeakerProfile] = {}
        self._next_id = 1

    async def add(self, profile: SpeakerProfile) -> SpeakerProfile:
        if not profile.name.strip():
            raise ValueError("a profile needs a name")
        if not profile.embedder:
            raise ValueError("a profile must say which embedder made it")
        stored = copy.deepcopy(profile)
        stored.embedding = unit(profile.embedding)
        stored.id = str(self._next_id)
        stored.created_at = stored.updated_at = time.time()
        self._next_id += 1
        self._profiles[stored.id] = stored
        return copy.deepcopy(stored)

    async def get(self, profile_id: str) -> SpeakerProfile | None:
        found = self._profiles.get(profile_id)
        return None if found is None else copy.deepcopy(found)

    async def delete(self, profile_id: str) -> bool:
        return self._profiles.pop(profile_id, None) is not None

    async def search(self, embedding: np.ndarray, balcao_id: str, embedder: str) -> list[tuple[SpeakerProfile, float]]:
        query = unit(embedding)
        usable = [p for p in await self.list(balcao_id, embedder) if p.embedding.size == query.size]
        scored = [(p, float(np.dot(p.embedding.astype(np.float64), query.astype(np.float64)))) for p in usable]
        return sorted(scored, key=lambda item: -item[1])

    async def list(self, balcao_id: str | None = None, embedder: str | None = None) -> list[SpeakerProfile]:
        return [
            copy.deepcopy(p)
            for p in sorted(self._profiles.values(), key=lambda p: int(p.id or 0))
            if (balcao_id is None or p.balcao_id in (None, balcao_id)) and embedder in (None, p.embedder)
        ]
