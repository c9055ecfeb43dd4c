"""Recommender contract: the fake and the OpenAI-compatible adapter (real SDK, real HTTP to a local stub)."""

from __future__ import annotations

import json

import openai
import pytest

from balto.adapters.openai_llm import OpenAICompatibleRecommender, parse_suggestions
from balto.domain.buffer import BufferLine
from balto.domain.interaction import IaStatus, RecommendationRequest, RecommendationResult, Suggestion
from tests.fakes import FakeRecommender
from tests.support.openai_server import Reply

REQUEST = RecommendationRequest(
    balcao_id="B1",
    lines=(BufferLine("Bom dia, estou com dor de cabeça", 1.0, "Cliente"), BufferLine("Tem dipirona?", 2.0, "Cliente")),
    history=(BufferLine("Olá, em que posso ajudar?", 0.5, "Atendente"),),
    already_suggested=("Pergunte há quanto tempo dói",),
)


def adapter(base_url: str, timeout: float = 5.0) -> OpenAICompatibleRecommender:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=base_url, timeout=timeout, max_retries=1)
    return OpenAICompatibleRecommender(client, model="stub-model", provider="openai", max_suggestions=3)


@pytest.fixture(params=["fake", "openai"])
def backend(request):
    """(recommender, script) where script(kind) makes the next call answer `ok`, `empty` or `error`."""
    if request.param == "fake":
        fake = FakeRecommender()

        def script_fake(kind: str) -> None:
            fake.results.append(
                {
                    "ok": RecommendationResult(
                        IaStatus.OK, (Suggestion("Ofereça dipirona"), Suggestion("Pergunte a idade")), raw="{}"
                    ),
                    "empty": RecommendationResult(IaStatus.EMPTY, (), raw='{"sugestoes": []}'),
                    "error": RecommendationResult(IaStatus.ERROR, error="HTTP 500"),
                }[kind]
            )

        return fake, script_fake
    stub = request.getfixturevalue("openai_stub")
    server = request.getfixturevalue("openai_server")

    def script_openai(kind: str) -> None:
        stub.script.append(
            {
                "ok": Reply.suggestions("Ofereça dipirona", "Pergunte a idade"),
                "empty": Reply.suggestions(),
                "error": Reply(status=500),
            }[kind]
        )
        if kind == "error":
            stub.script.append(Reply(status=500))  # the SDK retries once

    return adapter(server.base_url), script_openai


async def test_suggestions_come_back_in_order(backend):
    recommender, script = backend
    script("ok")
    result = await recommender.recommend(REQUEST)
    assert result.status is IaStatus.OK
    assert [s.text for s in result.suggestions] == ["Ofereça dipirona", "Pergunte a idade"]
    assert all(s.source == "llm" for s in result.suggestions)
    assert result.raw


async def test_no_suggestion_is_empty_not_error(backend):
    recommender, script = backend
    script("empty")
    result = await recommender.recommend(REQUEST)
    assert result.status in (IaStatus.EMPTY, IaStatus.OK)
    assert result.suggestions == ()


async def test_provider_failure_is_a_result_not_an_exception(backend):
    recommender, script = backend
    script("error")
    result = await recommender.recommend(REQUEST)
    assert result.status is IaStatus.ERROR
    assert result.suggestions == ()
    assert result.error


# -- the OpenAI-compatible adapter in detail --------------------------------------------------------


async def test_request_carries_context_roles_already_shown_and_json_mode(openai_server, openai_stub):
    await adapter(openai_server.base_url).recommend(REQUEST)
    body = openai_stub.requests[-1]
    assert body["model"] == "stub-model"
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert system["role"] == "system" and "farmácia" in system["content"]
    assert "Atendente: Olá, em que posso ajudar?" in user["content"]
    assert "Cliente: Tem dipirona?" in user["content"]
    assert "Pergunte há quanto tempo dói" in user["content"]
    headers = {k.lower(): v for k, v in openai_stub.headers[-1].items()}
    assert headers["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('```json\n{"sugestoes": ["Ofereça água"]}\n```', ["Ofereça água"]),
        ('Claro! Aqui está: {"sugestoes": ["Ofereça água"]} Espero ter ajudado.', ["Ofereça água"]),
        ('["Ofereça água", "Sugira repouso"]', ["Ofereça água", "Sugira repouso"]),
        ('{"sugestoes": ["a", 3, null, {"texto": "b"}, "  "]}', ["a", "b"]),
        ('{"suggestions": ["in English"]}', ["in English"]),
        ("{}", []),
    ],
)
async def test_replies_are_parsed_defensively(openai_server, openai_stub, content, expected):
    openai_stub.script.append(Reply(content=content))
    result = await adapter(openai_server.base_url).recommend(REQUEST)
    assert [s.text for s in result.suggestions] == expected
    assert result.raw == content


async def test_malformed_reply_is_an_error_that_keeps_the_raw_text(openai_server, openai_stub):
    openai_stub.script.append(Reply(content="Não consigo ajudar com isso."))
    result = await adapter(openai_server.base_url).recommend(REQUEST)
    assert result.status is IaStatus.ERROR
    assert result.raw == "Não consigo ajudar com isso."


async def test_slow_provider_times_out(openai_server, openai_stub):
    openai_stub.script.extend([Reply.suggestions("tarde"), Reply.suggestions("tarde")])
    openai_stub.script[0].delay_s = openai_stub.script[1].delay_s = 1.0
    result = await adapter(openai_server.base_url, timeout=0.3).recommend(REQUEST)
    assert result.status is IaStatus.TIMEOUT


async def test_rate_limit_is_retried_once_then_succeeds(openai_server, openai_stub):
    openai_stub.script.extend([Reply(status=429), Reply.suggestions("depois do 429")])
    result = await adapter(openai_server.base_url).recommend(REQUEST)
    assert [s.text for s in result.suggestions] == ["depois do 429"]


async def test_http_error_body_is_kept(openai_server, openai_stub):
    body = json.dumps({"error": {"message": "quota exceeded"}})
    openai_stub.script.extend([Reply(status=500, body=body), Reply(status=500, body=body)])
    result = await adapter(openai_server.base_url).recommend(REQUEST)
    assert result.status is IaStatus.ERROR
    assert "500" in result.error and "quota exceeded" in result.error


def test_suggestions_are_capped_and_trimmed_to_fit_a_card():
    many = json.dumps({"sugestoes": [f"s{i}" for i in range(6)] + ["x" * 500]})
    assert parse_suggestions(many, max_suggestions=3) == ["s0", "s1", "s2"]
    (long,) = parse_suggestions(json.dumps({"sugestoes": ["x" * 500]}), 3)
    assert len(long) == 140 and long.endswith("…")
