"""Speaker identification and enrolment: the application services over the embedder and profile ports.

`SpeakerIdentification` is built once per process (it holds the loaded embedder); each connection gets
its own `ConnectionSpeakers`, which remembers the unknown voices it heard there. Embedding is
CPU-bound, so it runs on a dedicated executor, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from balto.domain.speaker import (
    UNKNOWN_ROLE,
    Calibration,
    EmbeddingError,
    EnrollmentError,
    EnrollmentPolicy,
    SpeakerMatch,
    SpeakerProfile,
    UnknownVoices,
    Voice,
    average_embedding,
    normalise_role,
    speech_seconds,
    unknown_label,
)
from balto.domain.vad import FRAME_SAMPLES, SAMPLE_RATE
from balto.ports.audio import AudioCleaner, SpeechDetector
from balto.ports.inference import SpeakerEmbedder, SpeakerIdentifier
from balto.ports.storage import SpeakerProfileRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentificationConfig:
    calibration: Calibration = field(default_factory=Calibration)
    min_segment_s: float = 1.0  # shorter segments are not identified (speaker_data stays NULL)
    cluster_threshold: float = 0.64  # cosine to an unknown voice's mean to count as that voice
    unknown_role: str = UNKNOWN_ROLE


class SpeakerIdentification:
    """What every connection shares: the embedder, the profile store, the calibration, the executor,
    and the noise cleaner when it serves speaker identification only (AUDIO_CLEANER=speaker)."""

    def __init__(
        self,
        embedder: SpeakerEmbedder,
        profiles: SpeakerProfileRepository,
        executor: Executor | None = None,
        config: IdentificationConfig | None = None,
        cleaner: AudioCleaner | None = None,
    ) -> None:
        self.embedder = embedder
        self.profiles = profiles
        self.config = config or IdentificationConfig()
        self._executor = executor
        self._cleaner = cleaner

    async def embed(self, pcm: np.ndarray) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._clean_and_embed, pcm)

    def _clean_and_embed(self, pcm: np.ndarray) -> np.ndarray:
        # Cleaning and embedding share the one speaker thread: the cleaning serves this model only,
        # and run on threads of their own the two had competed with Whisper's decodes for the cores.
        if self._cleaner is not None:
            try:
                pcm = self._cleaner.clean(pcm)
            except Exception:
                log.exception("audio cleaner failed; embedding the raw segment")
        return self.embedder.embed(pcm)

    def for_connection(self) -> ConnectionSpeakers:
        return ConnectionSpeakers(self)


class ConnectionSpeakers(SpeakerIdentifier):
    """One connection's speaker identifier: matches each segment against the balcão's profiles and
    numbers the unknown voices (`cliente_1`, `cliente_2`, ...) by clustering their embeddings."""

    def __init__(self, shared: SpeakerIdentification) -> None:
        self._shared = shared
        self._voices = UnknownVoices(threshold=shared.config.cluster_threshold)
        self.last_cost_ms: float | None = None  # CPU time of the last embedding, for logs and benchmarks

    async def listen(self, pcm: np.ndarray) -> Voice | None:
        shared = self._shared
        duration_s = pcm.size / SAMPLE_RATE
        if duration_s < shared.config.min_segment_s:
            return None
        started = time.perf_counter()
        try:
            embedding = await shared.embed(pcm)
        except EmbeddingError as exc:
            log.info("segment not identified: %s", exc)
            return None
        self.last_cost_ms = (time.perf_counter() - started) * 1000
        return Voice(embedding, duration_s)

    async def identify(self, voice: Voice, balcao_id: str) -> SpeakerMatch:
        shared, config = self._shared, self._shared.config
        candidates = await shared.profiles.search(voice.embedding, balcao_id, shared.embedder.name)
        # With nobody enrolled here there is nothing to tell roles by: unknown voices are only numbered.
        role = config.unknown_role if candidates else None
        match = config.calibration.match(candidates, voice.duration_s, role)
        if match.is_unknown:
            match = match.naming_unknown(unknown_label(self._voices.assign(voice.embedding), role))
        return match


@dataclass(frozen=True)
class EnrolledVoice:
    embedding: np.ndarray
    speech_s: tuple[tuple[str, float], ...]  # (recording name, seconds of speech) for each recording
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnrollmentResult:
    profile: SpeakerProfile
    speech_s: float
    warnings: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()  # ids of the profiles this one replaced


class Enrollment:
    """Makes a voice profile from recordings of one speaker: refuses silent or too little speech,
    embeds each recording, averages them weighted by their seconds of speech, stores the profile."""

    def __init__(
        self,
        embedder: SpeakerEmbedder,
        profiles: SpeakerProfileRepository,
        new_detector: Callable[[], SpeechDetector],
        policy: EnrollmentPolicy | None = None,
        min_rms: float = 50.0,
    ) -> None:
        self.embedder = embedder
        self.profiles = profiles
        self._new_detector = new_detector
        self.policy = policy or EnrollmentPolicy()
        self._min_rms = min_rms

    def embed_recordings(
        self, recordings: Sequence[tuple[str, np.ndarray]], progress: Callable[[str], None] | None = None
    ) -> EnrolledVoice:
        """Blocking (CPU-bound): check and embed every recording; EnrollmentError says what is wrong."""
        detector = self._new_detector()
        measured = [
            (name, speech_seconds(pcm, detector.is_voiced, FRAME_SAMPLES, SAMPLE_RATE, self._min_rms))
            for name, pcm in recordings
        ]
        warnings = self.policy.check(measured)
        embeddings = []
        for name, pcm in recordings:
            try:
                embeddings.append(self.embedder.embed(pcm))
            except EmbeddingError as exc:
                raise EnrollmentError(f"{name}: {exc}") from None
            if progress is not None:
                progress(name)
        embedding = average_embedding(embeddings, [seconds for _, seconds in measured])
        return EnrolledVoice(embedding, tuple(measured), tuple(warnings))

    async def enroll(
        self,
        name: str,
        role: str,
        balcao_id: str | None,
        recordings: Sequence[tuple[str, np.ndarray]],
        *,
        replace: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> EnrollmentResult:
        name = name.strip()
        if not name:
            raise EnrollmentError("a profile needs a name")
        role = normalise_role(role)
        balcao_id = balcao_id.strip() if balcao_id and balcao_id.strip() else None
        same = [
            p
            for p in await self.profiles.list(balcao_id, self.embedder.name)
            if p.name.casefold() == name.casefold() and p.balcao_id == balcao_id
        ]
        if same and not replace:
            where = f"balcão {balcao_id}" if balcao_id else "every balcão"
            raise EnrollmentError(
                f"{name!r} is already enrolled for {where} (profile {same[0].id}); "
                "enroll with --replace to record the voice again, or delete that profile first"
            )
        voice = await asyncio.to_thread(self.embed_recordings, recordings, progress)
        profile = await self.profiles.add(
            SpeakerProfile(
                name=name,
                role=role,
                embedding=voice.embedding,
                balcao_id=balcao_id,
                samples=len(recordings),
                embedder=self.embedder.name,
            )
        )
        for old in same:
            await self.profiles.delete(str(old.id))
        total = sum(seconds for _, seconds in voice.speech_s)
        log.info("enrolled %s (%s) as profile %s from %.1f s of speech", name, role, profile.id, total)
        return EnrollmentResult(profile, total, voice.warnings, tuple(str(p.id) for p in same))
