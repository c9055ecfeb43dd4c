"""Speech detector on webrtcvad (Google's WebRTC GMM voice detector)."""

from __future__ import annotations

import warnings

import numpy as np

from balto.domain.vad import FRAME_SAMPLES, SAMPLE_RATE
from balto.ports.audio import SpeechDetector

with warnings.catch_warnings():
    # webrtcvad imports pkg_resources, which setuptools >= 80 (needed by torch) flags as deprecated.
    warnings.simplefilter("ignore", UserWarning)
    import webrtcvad


class WebRtcSpeechDetector(SpeechDetector):
    """One instance per connection: webrtcvad adapts its model to the stream it sees."""

    def __init__(self, aggressiveness: int = 2) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"webrtcvad aggressiveness must be 0-3, got {aggressiveness}")
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_voiced(self, frame: np.ndarray) -> bool:
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"expected a frame of {FRAME_SAMPLES} samples, got {frame.shape}")
        return bool(self._vad.is_speech(frame.astype("<i2", copy=False).tobytes(), SAMPLE_RATE))
