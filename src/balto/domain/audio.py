"""Audio values that cross the decoder boundary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioFormat:
    """What the client says (or the first bytes show) it sends."""

    format: str = "pcm_s16le"  # pcm_s16le | webm | ogg | wav | auto
    sample_rate: int = 16_000
    channels: int = 1


@dataclass(frozen=True)
class PcmChunk:
    """Decoded audio: int16 mono samples at 16 kHz, and when the bytes that carried them arrived."""

    samples: np.ndarray
    received_at: float
