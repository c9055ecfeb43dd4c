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


class SpeechGate(Protocol):
    """A second opinion on a segment the VAD cut, before it is transcribed or identified: how likely
    each `frame_ms` of it is speech (0..1). The VAD is an energy and WebRTC frame classifier tuned
    not to miss speech, so it also hands on noise bursts; the gate's model is the one that knows."""

    @property
    def name(self) -> str: ...

    @property
    def frame_ms(self) -> float: ...

    async def speech_probabilities(self, pcm: np.ndarray) -> np.ndarray: ...


class SpeakerEmbedder(Protocol):
    """A voice as a vector: speech (16 kHz mono int16) in, a unit-norm float32 embedding of `dim` out.

    CPU-bound and synchronous: callers run it off the event loop. Embeddings of different embedders
    (`name`) are not comparable, so profiles record which one made them.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, pcm: np.ndarray) -> np.ndarray: ...


class SpeakerIdentifier(Protocol):
    """Spec 2.3: embeds a speech segment and compares it with the enrolled voice profiles.

    One per connection: it remembers the unknown voices it heard there, to tell them apart. None when
    the segment is too short (or not a voice) to say who it is.
    """

    async def add_segment(self, pcm: np.ndarray, balcao_id: str) -> SpeakerMatch | None: ...


class Recommender(Protocol):
    """Suggestions for the attendant from the conversation so far; never raises for provider faults,
    which come back as a result with an error status."""

    @property
    def name(self) -> str: ...

    async def recommend(self, request: RecommendationRequest) -> RecommendationResult: ...
