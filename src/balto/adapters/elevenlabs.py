"""Transcription by ElevenLabs' speech-to-text (Scribe) through the official `elevenlabs` SDK."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import httpx
import numpy as np
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError

from balto.adapters.pcm import pcm_to_wav
from balto.domain.interaction import Transcript
from balto.domain.transcription import normalize_language
from balto.ports.inference import Transcriber, TranscriptionError

ELEVENLABS_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL = "scribe_v2"


def elevenlabs_client(
    api_key: str, base_url: str | None = None, timeout_s: float = 10.0
) -> tuple[AsyncElevenLabs, httpx.AsyncClient]:
    """The SDK's asyncio client, on an httpx pool we own so that shutdown can close it."""
    http = httpx.AsyncClient(timeout=timeout_s)
    client = AsyncElevenLabs(api_key=api_key, base_url=base_url or ELEVENLABS_BASE_URL, httpx_client=http)
    return client, http


class ElevenLabsTranscriber(Transcriber):
    """POST /v1/speech-to-text with the segment as WAV; one narrow vendor call (`_convert`).

    The SDK's own retries are off: on a failure SMART_ROUTING moves to the next provider at once
    instead of waiting for the same vendor again.
    """

    def __init__(
        self,
        client: AsyncElevenLabs,
        model_id: str = DEFAULT_MODEL,
        timeout_s: float = 10.0,
        language: str | None = "pt",
    ) -> None:
        self._client = client
        self._model_id = model_id
        self._timeout_s = timeout_s
        self._language = language

    @property
    def name(self) -> str:
        return "elevenlabs"

    async def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        language = language or self._language
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._convert(pcm_to_wav(pcm), language)
        except TimeoutError:
            raise TranscriptionError(f"elevenlabs: no transcript within {self._timeout_s:g} s") from None
        except ApiError as exc:
            if exc.status_code is not None and 200 <= exc.status_code < 300:  # the SDK's "body is not JSON"
                raise TranscriptionError(f"elevenlabs: unreadable answer: {str(exc.body)[:500]}") from exc
            raise TranscriptionError(f"elevenlabs: HTTP {exc.status_code}: {str(exc.body)[:500]}") from exc
        except httpx.HTTPError as exc:
            raise TranscriptionError(f"elevenlabs: {type(exc).__name__}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise TranscriptionError(f"elevenlabs: unreadable answer: {type(exc).__name__}: {exc}") from exc
        text = getattr(response, "text", None)
        if not isinstance(text, str):
            # The SDK builds response models without validating them; check what the code relies on.
            raise TranscriptionError(f"elevenlabs: answer has no transcript text: {str(response)[:300]}")
        return Transcript(
            text=" ".join(text.split()),
            language=normalize_language(getattr(response, "language_code", None) or language),
            confidence=_word_confidence(getattr(response, "words", None)),
            provider=self.name,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def _convert(self, wav: bytes, language: str | None) -> Any:
        options: dict[str, Any] = {"language_code": language} if language else {}
        return await self._client.speech_to_text.convert(
            model_id=self._model_id,
            file=("segment.wav", wav, "audio/wav"),
            tag_audio_events=False,  # "(risos)" and "(música)" are not words said at the counter
            request_options={"max_retries": 0, "timeout_in_seconds": math.ceil(self._timeout_s)},
            **options,
        )


def _word_confidence(words: Any) -> float | None:
    """The geometric mean of the word probabilities (Scribe reports a logprob per word)."""
    logprobs = [
        w.logprob
        for w in words or ()
        if getattr(w, "type", "word") == "word" and isinstance(getattr(w, "logprob", None), (int, float))
    ]
    return math.exp(sum(logprobs) / len(logprobs)) if logprobs else None
