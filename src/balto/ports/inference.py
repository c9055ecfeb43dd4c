"""Model-backed ports: transcription, speaker identification and recommendations."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Protocol, runtime_checkable

import numpy as np

from balto.domain.interaction import RecommendationRequest, RecommendationResult, Transcript
from balto.domain.speaker import SpeakerMatch, Voice


class TranscriptionError(Exception):
    """The transcriber could not produce text for this segment (vendor down, timeout, bad audio)."""


class Transcriber(Protocol):
    """Speech to text for one VAD segment (16 kHz mono int16)."""

    @property
    def name(self) -> str: ...

    async def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript: ...


@runtime_checkable
class LocalWorkers(Protocol):
    """A transcriber that runs on this machine's own workers and can tell how many are free now.

    Sessions use it to transcribe a segment early, before the VAD's hang-over has closed it: only on
    a free worker, so the guess does not delay segments that have closed, and never on a paid vendor.
    """

    @property
    def workers(self) -> int: ...

    def idle_workers(self) -> int: ...


class SpeechGate(Protocol):
    """A second opinion on a segment the VAD cut, before it is transcribed or identified: how likely
    each `frame_ms` of it is speech (0..1). The VAD is an energy and WebRTC frame classifier tuned
    not to miss speech, so it also hands on noise bursts; the gate's model is the one that knows."""

    @property
    def name(self) -> str: ...

    @property
    def frame_ms(self) -> float: ...

    async def speech_probabilities(self, pcm: np.ndarray) -> np.ndarray: ...


class SpeechStream(Protocol):
    """A speech model fed one connection's whole stream, in order (16 kHz mono int16 pieces): its
    state carries from piece to piece, so it judges each window knowing the room. `feed` queues a
    piece and returns, as a future, the probabilities of the windows of `window_samples` that the
    piece completed, in order; pieces are worked through in the order they were fed. Off the event
    loop: the caller waits for a future only when it needs the verdicts."""

    @property
    def window_samples(self) -> int: ...

    def feed(self, pcm: np.ndarray) -> Future[np.ndarray]: ...


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

    One per connection: it remembers the unknown voices it heard there, to tell them apart. Two steps,
    so that the costly one can start before the segment is final and be thrown away if it changes.
    """

    async def listen(self, pcm: np.ndarray) -> Voice | None:
        """The segment's voice, or None when it is too short (or not a voice) to say who it is.
        CPU-bound (run off the event loop) and stateless: nothing is remembered."""
        ...

    async def identify(self, voice: Voice, balcao_id: str) -> SpeakerMatch:
        """Who spoke: compared with the balcão's profiles, and remembered among the connection's unknown
        voices. Once per segment, in the order the segments were said."""
        ...


class Recommender(Protocol):
    """Suggestions for the attendant from the conversation so far; never raises for provider faults,
    which come back as a result with an error status."""

    @property
    def name(self) -> str: ...

    async def recommend(self, request: RecommendationRequest) -> RecommendationResult: ...
