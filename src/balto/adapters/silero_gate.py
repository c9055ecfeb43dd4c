"""Silero VAD as the speech gate: the ONNX model faster-whisper ships in its assets (no download).

Per 32 ms of a segment, the probability that it is speech. Runs on its own thread (onnxruntime
releases the GIL; about 6 ms of one core for a 2-3 s segment, docs/performance.md). `stream()` feeds
the same model a connection's whole stream, its state carried from piece to piece, for the
segmenter's pauses (`SpeechTrack`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from balto.ports.inference import SpeechGate, SpeechStream

log = logging.getLogger(__name__)

NAME = "silero"  # the STT provider its rows carry (stt_status "vazia")
RATE = 16_000
WINDOW = 512  # samples per Silero frame at 16 kHz
FRAME_MS = WINDOW * 1000 / RATE  # 32 ms
CONTEXT = 64  # samples of the previous window each window is shown with (Silero's own streaming use)
STATE_SHAPE = (1, 1, 128)


class SileroSpeechGate(SpeechGate):
    def __init__(self, model: Any, executor: ThreadPoolExecutor | None = None) -> None:
        self._model = model
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="speech-gate")

    @property
    def name(self) -> str:
        return NAME

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

    def stream(self) -> SileroSpeechStream:
        """A stream for one connection, run on this gate's thread."""
        return SileroSpeechStream(self._model.session, self._executor)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class SileroSpeechStream(SpeechStream):
    """Silero over one connection's stream: each piece's complete 512-sample windows go through the
    model as one sequence, with the state (`h`, `c`) and the 64 samples of context the previous
    piece left, so the probabilities are those of one pass over the whole stream. The samples past
    the last complete window wait for the next piece."""

    def __init__(self, session: Any, executor: ThreadPoolExecutor) -> None:
        self._session = session
        self._executor = executor
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    @property
    def window_samples(self) -> int:
        return WINDOW

    def feed(self, pcm: np.ndarray) -> Future[np.ndarray]:
        audio = pcm.astype(np.float32) / 32768.0  # a copy: the caller's buffer may be reused
        return self._executor.submit(self._run, audio)

    def _run(self, audio: np.ndarray) -> np.ndarray:
        audio = np.concatenate([self._pending, audio]) if self._pending.size else audio
        windows = audio.size // WINDOW
        self._pending = audio[windows * WINDOW :]
        if not windows:
            return np.zeros(0, dtype=np.float32)
        batch = audio[: windows * WINDOW].reshape(windows, WINDOW)
        contexts = np.vstack([self._context[None, :], batch[:-1, -CONTEXT:]])
        self._context = batch[-1, -CONTEXT:].copy()
        output, self._h, self._c = self._session.run(
            None, {"input": np.hstack([contexts, batch]), "h": self._h, "c": self._c}
        )
        return np.asarray(output, dtype=np.float32).reshape(-1)


def load_silero_gate(executor: ThreadPoolExecutor | None = None) -> SileroSpeechGate:
    """The model from faster-whisper's package assets; fails loudly if onnxruntime is missing."""
    from faster_whisper.utils import get_assets_path
    from faster_whisper.vad import SileroVADModel

    model = SileroVADModel(os.path.join(get_assets_path(), "silero_vad_v6.onnx"))
    gate = SileroSpeechGate(model, executor)
    gate.probabilities(np.zeros(RATE // 2, dtype=np.int16))  # the first run allocates; pay it here
    log.info("speech gate silero loaded")
    return gate
