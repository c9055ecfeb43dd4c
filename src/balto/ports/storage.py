"""Persistence ports: interactions, feedback on their cards, API keys and voice profiles."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from balto.domain.interaction import Feedback, Interaction
from balto.domain.keys import ApiKey
from balto.domain.speaker import SpeakerProfile


class InteractionRepository(Protocol):
    async def add(self, interaction: Interaction) -> int:
        """Store a finished cycle and return its row id. Adding the same uuid twice stores it once."""
        ...

    async def get(self, uuid: str) -> Interaction | None: ...

    async def list_recent(self, balcao_id: str | None = None, limit: int = 50) -> list[Interaction]:
        """Newest first."""
        ...


class FeedbackRepository(Protocol):
    """Every verdict a counter sends on a card; several on one interaction are all kept (newest last)."""

    async def add(self, feedback: Feedback) -> int:
        """Store a verdict and return its id."""
        ...

    async def list_for(self, interacao_uuid: str) -> list[Feedback]:
        """The verdicts on one interaction, oldest first."""
        ...


class ApiKeyRepository(Protocol):
    async def create(self, balcao_id: str) -> tuple[ApiKey, str]:
        """A new key for the balcão; the plain key is returned here and never again."""
        ...

    async def resolve(self, plain_key: str) -> ApiKey | None:
        """The active key matching `plain_key`, or None (unknown or revoked)."""
        ...

    async def revoke(self, key_id: int) -> bool: ...

    async def list(self) -> list[ApiKey]: ...


class SpeakerProfileRepository(Protocol):
    async def add(self, profile: SpeakerProfile) -> SpeakerProfile:
        """Store a new profile; the returned copy has its id and timestamps."""
        ...

    async def get(self, profile_id: str) -> SpeakerProfile | None: ...

    async def delete(self, profile_id: str) -> bool: ...

    async def search(self, embedding: np.ndarray, balcao_id: str, embedder: str) -> list[tuple[SpeakerProfile, float]]:
        """Every profile usable at this balcão made by `embedder`, with its cosine similarity to
        `embedding`, most similar first."""
        ...

    async def list(self, balcao_id: str | None = None, embedder: str | None = None) -> list[SpeakerProfile]:
        """Profiles usable at this balcão (its own and the global ones); all when balcao_id is None.
        Only those made by `embedder` when it is given. Oldest first."""
        ...
