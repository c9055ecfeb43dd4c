"""AudioCleaner on noisereduce's spectral gating (stateless: each call sees only the audio it gets)."""

from __future__ import annotations

import numpy as np

from balto.ports.audio import AudioCleaner

# noisereduce's zeros on each side of a buffer. They double the cost of a short segment, but they are
# part of its noise estimate: without them speaker identification lost 2-4 points of top-1 in cafe
# noise (docs/performance.md, "Tried before, and not kept").
PADDING = 30_000


class NoiseReduceCleaner(AudioCleaner):
    """Spectral gating over one buffer at a time.

    `stationary=False` estimates the noise per frequency over a sliding window inside the buffer,
    which suits a shop (voices, a coffee machine) better than one fixed noise profile; `prop_decrease`
    below 1 leaves some noise in, which Whisper copes with better than with gating artefacts.
    """

    def __init__(
        self, stationary: bool = False, prop_decrease: float = 0.8, sample_rate: int = 16_000, padding: int = PADDING
    ) -> None:
        self._stationary = stationary
        self._padding = padding
        self._prop_decrease = prop_decrease
        self._rate = sample_rate

    def clean(self, pcm: np.ndarray) -> np.ndarray:
        import noisereduce

        if pcm.size < 2048:  # shorter than one FFT window: nothing to estimate noise from
            return pcm
        audio = pcm.astype(np.float32) / 32768.0
        cleaned = noisereduce.reduce_noise(
            y=audio,
            sr=self._rate,
            stationary=self._stationary,
            prop_decrease=self._prop_decrease,
            n_jobs=1,
            padding=self._padding,
        )
        return np.clip(np.round(cleaned * 32768.0), -32768, 32767).astype(np.int16)
