"""Transcription through the `openai` SDK's audio transcriptions endpoint: OpenAI itself, or any
self-hosted OpenAI-compatible Whisper server (how a deployment moves Whisper onto GPU machines)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import openai

from balto.adapters.pcm import pcm_to_wav
from balto.domain.interaction import Transcript
from balto.domain.transcription import AudioEvidence, DecodedSegment, judge_segments, normalize_language
from balto.ports.inference import Transcriber, TranscriptionError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "whisper-1"


class OpenAITranscriber(Transcriber):
    """POST {base_url}/audio/transcriptions with the segment as WAV; one narrow vendor call (`_create`).

    Whisper-style models are asked for `verbose_json`, whose per-segment no_speech_prob, avg_logprob
    and compression ratio go through the same hallucination rules as local Whisper: a served Whisper
    invents text on noise just as a local one does. OpenAI's `gpt-*` transcription models only answer
    `json`; their token logprobs give the confidence.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str = DEFAULT_MODEL,
        language: str | None = "pt",
        suppress_hallucinations: bool = True,
    ) -> None:
        self._client = client
        self._model = model
        self._language = language
        self._suppress = suppress_hallucinations
        self._verbose = not model.startswith("gpt-")

    @property
    def name(self) -> str:
        return "openai"

    async def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        language = language or self._language
        started = time.perf_counter()
        try:
            result = await self._create(pcm_to_wav(pcm), language)
        except openai.APITimeoutError as exc:
            raise TranscriptionError(f"openai: timeout: {exc}") from exc
        except openai.APIStatusError as exc:
            body = exc.response.text[:500] if exc.response is not None else ""
            raise TranscriptionError(f"openai: HTTP {exc.status_code}: {body}") from exc
        except openai.APIError as exc:
            raise TranscriptionError(f"openai: {type(exc).__name__}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise TranscriptionError(f"openai: unreadable answer: {type(exc).__name__}: {exc}") from exc
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise TranscriptionError(f"openai: answer has no transcript text: {str(result)[:300]}")
        segments = _segments(getattr(result, "segments", None))
        confidence: float | None
        if segments:
            text, confidence = self._keep_real_speech(segments, pcm)
        else:
            text, confidence = " ".join(text.split()), _token_confidence(getattr(result, "logprobs", None))
        return Transcript(
            text=text,
            language=normalize_language(getattr(result, "language", None) or language),
            confidence=confidence,
            provider=self.name,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _keep_real_speech(self, segments: list[DecodedSegment], pcm: np.ndarray) -> tuple[str, float | None]:
        if not self._suppress:
            kept_segments = segments
        else:
            kept_segments = []
            for segment, verdict in zip(segments, judge_segments(segments, AudioEvidence.of(pcm)), strict=True):
                if verdict.reason is not None:
                    log.info("openai %s (%s, %s): %r", self._model, verdict.reason.value, verdict.detail, segment.text)
                if verdict.text:
                    kept_segments.append(DecodedSegment(verdict.text, avg_logprob=segment.avg_logprob))
        text = " ".join(" ".join(s.text.split()) for s in kept_segments).strip()
        logprobs = [s.avg_logprob for s in kept_segments if s.avg_logprob is not None]
        return text, math.exp(sum(logprobs) / len(logprobs)) if logprobs else None

    async def _create(self, wav: bytes, language: str | None) -> Any:
        options: dict[str, Any] = {"language": language} if language else {}
        if self._verbose:
            options["response_format"] = "verbose_json"
        else:
            options["response_format"] = "json"
            options["include"] = ["logprobs"]
        return await self._client.audio.transcriptions.create(
            model=self._model, file=("segment.wav", wav, "audio/wav"), **options
        )


def _segments(raw: Any) -> list[DecodedSegment]:
    segments = []
    for item in raw or ():
        text = getattr(item, "text", None)
        if not isinstance(text, str):
            continue
        segments.append(
            DecodedSegment(
                text=text,
                no_speech_prob=_number(getattr(item, "no_speech_prob", None)),
                avg_logprob=_number(getattr(item, "avg_logprob", None)),
                compression_ratio=_number(getattr(item, "compression_ratio", None)),
            )
        )
    return segments


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _token_confidence(logprobs: Any) -> float | None:
    values = [_number(getattr(lp, "logprob", None)) for lp in logprobs or ()]
    numbers = [v for v in values if v is not None]
    return math.exp(sum(numbers) / len(numbers)) if numbers else None
