"""SMART_ROUTING: a Transcriber made of transcribers, with per-call timeouts, failover and a circuit
breaker per provider, so that one vendor's outage does not silence a counter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import numpy as np

from balto.domain.interaction import Transcript
from balto.domain.routing import BreakerState, CircuitBreaker, RoutingPolicy
from balto.domain.vad import SAMPLE_RATE
from balto.ports.inference import Transcriber, TranscriptionError
from balto.ports.system import Clock

log = logging.getLogger(__name__)


class SmartRoutingTranscriber(Transcriber):
    """Tries the providers in the policy's order for the segment's length until one answers.

    A provider gets `timeout_s` seconds; a timeout, a TranscriptionError or any other exception
    counts as its failure and the next provider is tried. The last provider in the order has no
    such limit, since cutting it short would only lose the transcript (a remote vendor still has
    its own deadline, STT_TIMEOUT_S). A provider whose breaker is open is
    skipped without a call. The Transcript that comes back is the serving provider's own (its name
    and latency). When every provider failed or was skipped, TranscriptionError lists why, one
    reason per provider.

    A local Whisper call that times out keeps its worker thread until the decode ends (CTranslate2
    cannot be interrupted); the next Whisper call waits for it.
    """

    def __init__(
        self,
        transcribers: Mapping[str, Transcriber],
        policy: RoutingPolicy,
        clock: Clock,
        timeout_s: float = 4.0,
        new_breaker: Callable[[], CircuitBreaker] = CircuitBreaker,
    ) -> None:
        missing = [name for name in policy.names if name not in transcribers]
        if missing:
            raise ValueError(f"SMART_ROUTING: no transcriber for {', '.join(missing)}")
        self._transcribers = dict(transcribers)
        self._policy = policy
        self._clock = clock
        self._timeout_s = timeout_s
        self._breakers = {name: new_breaker() for name in policy.names}

    @property
    def name(self) -> str:
        return "smart_routing"

    def breaker(self, provider: str) -> CircuitBreaker:
        return self._breakers[provider]

    async def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        failures: list[str] = []
        order = self._policy.order(pcm.size / SAMPLE_RATE)
        for position, name in enumerate(order, 1):
            breaker = self._breakers[name]
            now = self._clock.now()
            if not breaker.allow(now):
                failures.append(f"{name}: skipped for {breaker.retry_in(now):.0f} s more after repeated failures")
                continue
            probing = breaker.state is BreakerState.HALF_OPEN  # this call is the one probe
            timeout_s = self._timeout_s if position < len(order) else None
            transcript, failure = await self._attempt(name, breaker, probing, timeout_s, pcm, language)
            if transcript is not None:
                if failures:
                    log.info("SMART_ROUTING: segment served by %s after %s", name, "; ".join(failures))
                return transcript
            failures.append(failure)
            log.warning("SMART_ROUTING: %s", failure)
            if breaker.record_failure(self._clock.now()):
                log.warning(
                    "SMART_ROUTING: %s failed %d times within %g s; skipping it for %g s",
                    name,
                    breaker.failures,
                    breaker.window_s,
                    breaker.cooldown_s,
                )
        raise TranscriptionError("every transcription provider failed: " + "; ".join(failures))

    async def _attempt(
        self,
        name: str,
        breaker: CircuitBreaker,
        probing: bool,
        timeout_s: float | None,
        pcm: np.ndarray,
        language: str | None,
    ) -> tuple[Transcript | None, str]:
        try:
            async with asyncio.timeout(timeout_s):
                transcript = await self._transcribers[name].transcribe(pcm, language)
        except TimeoutError:
            return None, f"{name}: no answer within {timeout_s:g} s"
        except TranscriptionError as exc:
            message = str(exc)
            return None, message if message.startswith(f"{name}:") else f"{name}: {message}"
        except asyncio.CancelledError:
            if probing:
                breaker.release()  # no verdict on the provider: the next caller probes instead
            raise
        except Exception as exc:  # a crashing adapter is a failing provider, not a dead session
            log.exception("SMART_ROUTING: %s crashed", name)
            return None, f"{name}: {type(exc).__name__}: {exc}"
        if breaker.record_success(self._clock.now()) is not BreakerState.CLOSED:
            log.info("SMART_ROUTING: %s answered again; back in rotation", name)
        return transcript, ""
