"""Audio front-end ports: decoding client bytes to PCM, cleaning it, and telling voice from non-voice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np

from balto.domain.audio import PcmChunk


class DecodeError(Exception):
    """The client's bytes cannot be decoded; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AudioDecoder(Protocol):
    """One connection's stream: bytes in, 16 kHz mono int16 PCM chunks out, in order.

    `write` may apply back-pressure; `chunks` ends after `finish` once everything written was
    decoded, or raises DecodeError; `aclose` releases everything at once, whatever the state.
    """

    async def write(self, data: bytes, received_at: float) -> None: ...

    async def finish(self) -> None: ...

    def chunks(self) -> AsyncIterator[PcmChunk]: ...

    async def aclose(self) -> None: ...


class AudioCleaner(Protocol):
    """Stateless noise reduction: returns a cleaned copy of 16 kHz int16 samples."""

    def clean(self, pcm: np.ndarray) -> np.ndarray: ...


class SpeechDetector(Protocol):
    """Per-connection voice detector over 30 ms frames of 16 kHz int16 PCM (480 samples each)."""

    def is_voiced(self, frame: np.ndarray) -> bool: ...
