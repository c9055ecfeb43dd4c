"""Model-backed ports: transcription, speaker identification and recommendations."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from balto.domain.interaction import RecommendationRequest, RecommendationResult, Transcript
from balto.domain.speaker import SpeakerMatch


class TranscriptionError(Exception):
    """The transcriber could not produce text for this segment (vendor down, timeout, bad audio)."""


class Transcriber(Protocol):
    """Speech to text for one VAD segment (16 kHz mono int16)."""

    @property
    def name(self) -> str: ...

    async def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript: ...


class SpeakerIdentifier(Protocol):
    """Spec 2.3: embeds a speech segment and compares it with the enrolled voice profiles."""

    async def add_segment(self, pcm: np.ndarray, balcao_id: str) -> SpeakerMatch: ...


class Recommender(Protocol):
    """Suggestions for the attendant from the conversation so far; never raises for provider faults,
    which come back as a result with an error status."""

    @property
    def name(self) -> str: ...

    async def recommend(self, request: RecommendationRequest) -> RecommendationResult: ...
