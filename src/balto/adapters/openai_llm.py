"""Recommendations from any OpenAI-compatible chat endpoint (OpenAI, xAI's Grok, Ollama, vLLM...)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from typing import Any

import openai

from balto.domain.interaction import IaStatus, RecommendationRequest, RecommendationResult, Suggestion
from balto.ports.inference import Recommender

log = logging.getLogger(__name__)

XAI_BASE_URL = "https://api.x.ai/v1"

DEFAULT_SYSTEM_PROMPT = """Você é o assistente de balcão de uma farmácia brasileira. Você ouve, em tempo real, a \
conversa entre o atendente e o cliente e sugere ao atendente o que dizer ou oferecer agora.

Regras:
- Responda SOMENTE com um objeto JSON: {"sugestoes": ["...", "..."]}.
- No máximo {max_suggestions} sugestões, cada uma curta (até 15 palavras), em português, no imperativo, \
dirigida ao atendente.
- Sugira apenas o que ajuda nesta conversa: uma pergunta que falta fazer, um produto relacionado, uma \
orientação de uso, um cuidado de segurança. Nunca invente diagnósticos; para sintomas graves, oriente \
procurar um médico.
- Não repita sugestões já mostradas.
- Se não houver nada útil a sugerir, responda {"sugestoes": []}."""

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


_WARM_REPLY = {
    "id": "chatcmpl-warm-up",
    "object": "chat.completion",
    "created": 0,
    "model": "warm-up",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": '{"sugestoes": []}'}}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


@functools.cache
def warm_up_sdk() -> None:
    """One chat completion through the SDK, answered in-process by an httpx mock transport (no network):
    it pays, once per process, the import of the SDK's resource modules and pydantic's building of the
    request and response models, which the first real call would otherwise pay on the event loop."""
    try:  # the HTTP library the SDK is built on: httpx2 since openai 3, httpx before
        import httpx2 as http_lib
    except ImportError:  # pragma: no cover - older SDKs
        import httpx as http_lib  # type: ignore[no-redef]

    def answer(_: http_lib.Request) -> http_lib.Response:
        return http_lib.Response(200, json=_WARM_REPLY)

    with http_lib.Client(transport=http_lib.MockTransport(answer)) as http:
        client = openai.OpenAI(api_key="warm-up", base_url="http://warm-up.invalid/v1", http_client=http, max_retries=0)
        client.chat.completions.create(
            model="warm-up",
            messages=[{"role": "user", "content": "warm-up"}],
            temperature=0.0,
            response_format={"type": "json_object"},
        )


def parse_suggestions(content: str, max_suggestions: int, max_chars: int = 140) -> list[str] | None:
    """Suggestions from a model reply, or None when the reply holds no recognisable JSON.

    Models wrap JSON in code fences, add prose around it, return a bare list, or use other keys; all
    of that is accepted. Non-string items are dropped, text is trimmed to fit a card.
    """
    data = _load_json(content)
    if data is None:
        return None
    items: Any
    if isinstance(data, dict):
        items = next(
            (data[key] for key in ("sugestoes", "sugestões", "suggestions", "recomendacoes") if key in data), []
        )
    else:
        items = data
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        return []
    suggestions: list[str] = []
    for item in items:
        text = item.get("texto") or item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            continue
        text = " ".join(text.split())
        if not text:
            continue
        if len(text) > max_chars:
            text = text[: max_chars - 1].rstrip() + "…"
        if text not in suggestions:
            suggestions.append(text)
    return suggestions[:max_suggestions]


def _load_json(content: str) -> Any:
    candidates = [content.strip()]
    candidates += [m.strip() for m in _FENCE.findall(content)]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = content.find(opener), content.rfind(closer)
        if 0 <= start < end:
            candidates.append(content[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except (ValueError, TypeError):
            continue
    return None


class OpenAICompatibleRecommender(Recommender):
    """One narrow vendor call (`_complete`) through the official `openai` SDK.

    Grok is this adapter with xAI's base URL and key; any server speaking the chat-completions API
    (Ollama, vLLM, LM Studio) is this adapter with its base URL.

    Retries are the SDK's (the client is built with max_retries=1): a 408/409/429/5xx or a dropped
    connection is tried once more, which is safe since a chat completion changes nothing. `deadline_s`
    bounds the whole call, that retry and any Retry-After wait included (the SDK would honour up to
    two minutes): a suggestion that arrives after the customer left is worth nothing, and the
    fallback provider, if any, needs the time more.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        provider: str = "openai",
        temperature: float = 0.3,
        max_suggestions: int = 3,
        system_prompt: str | None = None,
        json_mode: bool = True,
        deadline_s: float | None = None,
    ) -> None:
        self._client = client
        # The SDK imports its resource modules on first access (~20 ms), and its first completion
        # builds pydantic's request and response models (~12 ms more than later calls): both done
        # here, at start-up, not inside the first call on the event loop.
        _ = client.chat.completions
        warm_up_sdk()
        self._model = model
        self._provider = provider
        self._temperature = temperature
        self._max_suggestions = max_suggestions
        prompt = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
        self._system_prompt = prompt.replace("{max_suggestions}", str(max_suggestions))
        self._json_mode = json_mode
        self._deadline_s = deadline_s

    @property
    def name(self) -> str:
        return self._provider

    def messages(self, request: RecommendationRequest) -> list[dict[str, str]]:
        user = f"Conversa no balcão até agora:\n{request.context}"
        if request.already_suggested:
            shown = "\n".join(f"- {s}" for s in request.already_suggested)
            user += f"\n\nSugestões já mostradas ao atendente (não repita):\n{shown}"
        return [{"role": "system", "content": self._system_prompt}, {"role": "user", "content": user}]

    async def recommend(self, request: RecommendationRequest) -> RecommendationResult:
        try:
            async with asyncio.timeout(self._deadline_s):
                content = await self._complete(self.messages(request))
        except TimeoutError:
            return RecommendationResult(
                IaStatus.TIMEOUT, provider=self.name, error=f"timeout: no answer within {self._deadline_s:g} s"
            )
        except openai.APITimeoutError as exc:
            return RecommendationResult(IaStatus.TIMEOUT, provider=self.name, error=f"timeout: {exc}")
        except openai.APIStatusError as exc:
            body = exc.response.text if exc.response is not None else ""
            return RecommendationResult(
                IaStatus.ERROR, provider=self.name, error=f"HTTP {exc.status_code}: {body[:2000]}"
            )
        except openai.APIError as exc:
            return RecommendationResult(IaStatus.ERROR, provider=self.name, error=f"{type(exc).__name__}: {exc}")
        parsed = parse_suggestions(content, self._max_suggestions)
        if parsed is None:
            return RecommendationResult(IaStatus.ERROR, raw=content, provider=self.name, error="resposta sem JSON")
        status = IaStatus.OK if parsed else IaStatus.EMPTY
        return RecommendationResult(
            status, tuple(Suggestion(text, source="llm") for text in parsed), raw=content, provider=self.name
        )

    async def _complete(self, messages: list[dict[str, str]]) -> str:
        kwargs: dict[str, Any] = {}
        if self._json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        response = await self._client.chat.completions.create(
            model=self._model,
            messages=messages,  # type: ignore[arg-type]
            temperature=self._temperature,
            **kwargs,
        )
        if not response.choices:
            return ""
        return response.choices[0].message.content or ""
