"""Recommenders made of other recommenders: a primary LLM with a fallback provider."""

from __future__ import annotations

import logging

from balto.domain.interaction import IaStatus, RecommendationRequest, RecommendationResult
from balto.ports.inference import Recommender

log = logging.getLogger(__name__)

FAILED = (IaStatus.ERROR, IaStatus.TIMEOUT)


class FallbackRecommender(Recommender):
    """Asks `primary`; when it errs or times out, asks `fallback` with the same request.

    An empty answer is an answer ("Nenhuma"), not a failure, so it does not fall back. When the
    fallback answers, its result is the cycle's (grok_raw_response is the reply the suggestions came
    from, ia_provider names the fallback); the primary's failure is logged. When both fail, the result
    carries both failures, so the row says what each provider did.
    """

    def __init__(self, primary: Recommender, fallback: Recommender) -> None:
        self._primary = primary
        self._fallback = fallback

    @property
    def name(self) -> str:
        return f"{self._primary.name}+{self._fallback.name}"

    async def recommend(self, request: RecommendationRequest) -> RecommendationResult:
        first = await self._primary.recommend(request)
        if first.status not in FAILED:
            return first
        log.warning(
            "LLM %s failed (%s): asking %s", self._primary.name, first.error or first.status, self._fallback.name
        )
        second = await self._fallback.recommend(request)
        if second.status not in FAILED:
            return second
        return RecommendationResult(
            second.status,
            raw=None,
            provider=f"{first.provider or self._primary.name}>{second.provider or self._fallback.name}",
            error=f"{_describe(first, self._primary.name)} || {_describe(second, self._fallback.name)}",
        )


def _describe(result: RecommendationResult, name: str) -> str:
    detail = result.error or result.status.value
    if result.raw is not None:  # an unparseable reply: keep what was said
        detail = f"{detail}: {result.raw}"
    return f"{result.provider or name}: {detail}"
