"""Transcription by AssemblyAI's pre-recorded API through the official `assemblyai` SDK (asyncio client)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import assemblyai as aai
import httpx
import numpy as np

from balto.adapters.pcm import pcm_to_wav
from balto.domain.interaction import Transcript
from balto.domain.transcription import normalize_language
from balto.ports.inference import Transcriber, TranscriptionError

ASSEMBLYAI_BASE_URL = "https://api.assemblyai.com"


def assemblyai_client(
    api_key: str, base_url: str | None = None, timeout_s: float = 10.0, poll_interval_s: float = 0.5
) -> aai.AsyncClient:
    """The SDK's asyncio client. Its default poll interval (3 s) is for long files; a segment is
    seconds long and a counter is waiting, so the transcript is polled every `poll_interval_s`."""
    settings = aai.Settings(
        api_key=api_key,
        base_url=base_url or ASSEMBLYAI_BASE_URL,
        http_timeout=timeout_s,
        polling_interval=poll_interval_s,
    )
    return aai.AsyncClient(settings=settings)


class AssemblyAITranscriber(Transcriber):
    """Upload the segment as WAV, create a transcript, poll until it is completed or failed.

    The whole round trip is one narrow vendor call (`_run_job`) bounded by `timeout_s`; any fault
    (HTTP status, network, timeout, a body the SDK cannot read, a transcript in `error`) becomes a
    TranscriptionError that names it.
    """

    def __init__(
        self,
        client: aai.AsyncClient,
        speech_models: Sequence[str] = (),
        timeout_s: float = 10.0,
        language: str | None = "pt",
    ) -> None:
        self._transcriber = aai.AsyncTranscriber(client=client)
        self._speech_models = list(speech_models)
        self._timeout_s = timeout_s
        self._language = language

    @property
    def name(self) -> str:
        return "assemblyai"

    async def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        language = language or self._language
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await self._run_job(pcm_to_wav(pcm), self._config(language))
        except TimeoutError:
            raise TranscriptionError(f"assemblyai: no transcript within {self._timeout_s:g} s") from None
        except aai.AssemblyAIError as exc:
            status = f"HTTP {exc.status_code}: " if getattr(exc, "status_code", None) else ""
            raise TranscriptionError(f"assemblyai: {status}{exc}") from exc
        except httpx.HTTPError as exc:
            raise TranscriptionError(f"assemblyai: {type(exc).__name__}: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:  # JSON or schema the SDK could not read
            raise TranscriptionError(f"assemblyai: unreadable answer: {type(exc).__name__}: {exc}") from exc
        if result.status == aai.TranscriptStatus.error:
            raise TranscriptionError(f"assemblyai: transcript failed: {result.error}")
        return Transcript(
            text=" ".join((result.text or "").split()),
            # The SDK may hand back its LanguageCode enum (a str subclass) or a plain string.
            language=normalize_language(getattr(result.language_code, "value", result.language_code) or language),
            confidence=result.confidence,
            provider=self.name,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _config(self, language: str | None) -> aai.TranscriptionConfig:
        config = (
            aai.TranscriptionConfig(language_code=language)
            if language
            else aai.TranscriptionConfig(language_detection=True)
        )
        if self._speech_models:
            config.speech_models = self._speech_models
        return config

    async def _run_job(self, wav: bytes, config: aai.TranscriptionConfig) -> aai.AsyncTranscript:
        """POST /v2/upload, POST /v2/transcript, then GET /v2/transcript/{id} until it is done."""
        return await self._transcriber.transcribe(wav, config)

    async def aclose(self) -> None:
        await self._transcriber.aclose()
