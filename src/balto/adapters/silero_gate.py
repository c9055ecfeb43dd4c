"""Silero VAD as the speech gate: the ONNX model faster-whisper ships in its assets (no download).

Per 32 ms of a segment, the probability that it is speech. Runs on its own thread (onnxruntime
releases the GIL; about 6 ms of one core for a 2-3 s segment, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from balto.ports.inference import SpeechGate

log = logging.getLogger(__name__)

RATE = 16_000
WINDOW = 512  # samples per Silero frame at 16 kHz
FRAME_MS = WINDOW * 1000 / RATE  # 32 ms


class SileroSpeechGate(SpeechGate):
    def __init__(self, model: Any, executor: ThreadPoolExecutor | None = None) -> None:
        self._model = model
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="speech-gate")

    @property
    def name(self) -> str:
        return "silero"

    @property
    def frame_ms(self) -> float:
        return FRAME_MS

    def probabilities(self, pcm: np.ndarray) -> np.ndarray:
        audio = pcm.astype(np.float32) / 32768.0
        audio = np.pad(audio, (0, (-audio.size) % WINDOW))
        if audio.size == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._model(audio), dtype=np.float32).reshape(-1)

    async def speech_probabilities(self, pcm: np.ndarray) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.probabilities, pcm)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def load_silero_gate(executor: ThreadPoolExecutor | None = None) -> SileroSpeechGate:
    """The model from faster-whisper's package assets; fails loudly if onnxruntime is missing."""
    from faster_whisper.utils import get_assets_path
    from faster_whisper.vad import SileroVADModel

    model = SileroVADModel(os.path.join(get_assets_path(), "silero_vad_v6.onnx"))
    gate = SileroSpeechGate(model, executor)
    gate.probabilities(np.zeros(RATE // 2, dtype=np.int16))  # the first run allocates; pay it here
    log.info("speech gate silero loaded")
    return gate
