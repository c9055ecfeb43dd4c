"""Recommender contract: the fake, the playbook, the OpenAI-compatible adapter (real SDK, real HTTP to a local
stub) and the fallback pair; then each real one in detail."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import openai
import pytest

from balto.adapters.openai_llm import OpenAICompatibleRecommender, parse_suggestions
from balto.adapters.playbook import PlaybookRecommender, load_playbook
from balto.app.recommenders import FallbackRecommender
from balto.app.settings import default_playbook_file
from balto.domain.buffer import BufferLine
from balto.domain.interaction import IaStatus, RecommendationRequest, RecommendationResult, Suggestion
from balto.domain.playbook import Playbook, PlaybookRule
from balto.ports.inference import Recommender
from tests.fakes import FakeRecommender
from tests.support.openai_server import Reply

REQUEST = RecommendationRequest(
    balcao_id="B1",
    lines=(BufferLine("Bom dia, estou com dor de cabeça", 1.0, "Cliente"), BufferLine("Tem dipirona?", 2.0, "Cliente")),
    history=(BufferLine("Olá, em que posso ajudar?", 0.5, "Atendente"),),
    already_suggested=("Pergunte há quanto tempo dói",),
)
QUIET = RecommendationRequest(balcao_id="B1", lines=(BufferLine("Bom dia, tudo bem?", 1.0),))
OK_TEXTS = ("Ofereça dipirona", "Pergunte a idade")


def adapter(
    base_url: str, timeout: float = 5.0, deadline: float | None = None, **kwargs
) -> OpenAICompatibleRecommender:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=base_url, timeout=timeout, max_retries=1)
    return OpenAICompatibleRecommender(
        client, model="stub-model", provider="openai", max_suggestions=3, deadline_s=deadline, **kwargs
    )


@dataclass
class Backend:
    recommender: Recommender
    prepare: Callable[[str], RecommendationRequest]  # scripts the next answer ("ok", "empty", "error")
    source: str = "llm"
    can_fail: bool = True


def failing() -> FakeRecommender:
    return FakeRecommender([RecommendationResult(IaStatus.ERROR, error="HTTP 503", provider="down")] * 10)


def scripted_stub(stub) -> Callable[[str], RecommendationRequest]:
    def prepare(kind: str) -> RecommendationRequest:
        stub.script.append(
            {"ok": Reply.suggestions(*OK_TEXTS), "empty": Reply.suggestions(), "error": Reply(status=500)}[kind]
        )
        if kind == "error":
            stub.script.append(Reply(status=500))  # the SDK retries once
        return REQUEST

    return prepare


@pytest.fixture(params=["fake", "playbook", "openai", "fallback"])
def backend(request) -> Backend:
    if request.param == "fake":
        fake = FakeRecommender()

        def prepare_fake(kind: str) -> RecommendationRequest:
            fake.results.append(
                {
                    "ok": RecommendationResult(IaStatus.OK, tuple(Suggestion(t) for t in OK_TEXTS), raw="{}"),
                    "empty": RecommendationResult(IaStatus.EMPTY, (), raw='{"sugestoes": []}'),
                    "error": RecommendationResult(IaStatus.ERROR, error="HTTP 500"),
                }[kind]
            )
            return REQUEST

        return Backend(fake, prepare_fake)
    if request.param == "playbook":
        rule = PlaybookRule("dor_de_cabeca", suggestions=OK_TEXTS, phrases=("dor de cabeça",), role="cliente")
        playbook = PlaybookRecommender(Playbook("teste", (rule,)))
        return Backend(playbook, lambda kind: REQUEST if kind == "ok" else QUIET, source="playbook", can_fail=False)
    stub = request.getfixturevalue("openai_stub")
    server = request.getfixturevalue("openai_server")
    if request.param == "openai":
        return Backend(adapter(server.base_url), scripted_stub(stub))
    return Backend(FallbackRecommender(failing(), adapter(server.base_url)), scripted_stub(stub))


async def test_suggestions_come_back_in_order(backend):
    result = await backend.recommender.recommend(backend.prepare("ok"))
    assert result.status is IaStatus.OK
    assert [s.text for s in result.suggestions] == list(OK_TEXTS)
    assert all(s.source == backend.source for s in result.suggestions)
    assert result.raw


async def test_no_suggestion_is_empty_not_error(backend):
    result = await backend.recommender.recommend(backend.prepare("empty"))
    assert result.status in (IaStatus.EMPTY, IaStatus.OK)
    assert result.suggestions == ()


async def test_provider_failure_is_a_result_not_an_exception(backend):
    if not backend.can_fail:
        pytest.skip("the playbook runs in-process from a validated file: it has no provider that can fail")
    result = await backend.recommender.recommend(backend.prepare("error"))
    assert result.status is IaStatus.ERROR
    assert result.suggestions == ()
    assert result.error


# -- the playbook in detail -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def farmacia() -> Playbook:
    return load_playbook(default_playbook_file())


async def test_shipped_playbook_answers_the_fixtures_headache_as_whisper_hears_it(farmacia):
    recommender = PlaybookRecommender(farmacia)
    heard = RecommendationRequest("B1", (BufferLine("Bom dia! Eu estou com muita dor de cabeça!", 1.0),), at=10.0)
    result = await recommender.recommend(heard)
    assert result.status is IaStatus.OK and result.provider == "playbook"
    assert {s.rule for s in result.suggestions} == {"dor_de_cabeca"}
    assert json.loads(result.raw)["regras"] == ["dor_de_cabeca"]


async def test_playbook_skips_what_was_already_shown_and_keeps_cool_downs_per_balcao(farmacia):
    recommender = PlaybookRecommender(farmacia)

    def ask(balcao: str, at: float, shown: tuple[str, ...] = ()) -> RecommendationRequest:
        return RecommendationRequest(
            balcao, (BufferLine("minha pressão está alta", at),), already_suggested=shown, at=at
        )

    first = await recommender.recommend(ask("B1", 100.0))
    texts = tuple(s.text for s in first.suggestions)
    assert texts and all(s.rule == "pressao" for s in first.suggestions)
    # Another conversation at the same counter, inside the rule's cool-down: nothing.
    assert (await recommender.recommend(ask("B1", 150.0))).status is IaStatus.EMPTY
    # Another counter has its own cool-downs.
    assert (await recommender.recommend(ask("B2", 150.0))).status is IaStatus.OK
    # After the cool-down the card may come back, but never what this conversation already saw.
    later = await recommender.recommend(ask("B1", 100.0 + farmacia.cooldown_s, shown=texts[:1]))
    assert [s.text for s in later.suggestions] == list(texts[1:])


# -- the fallback provider ------------------------------------------------------------------------------


async def test_fallback_answers_when_the_primary_fails(openai_server, openai_stub, openai_server_b, openai_stub_b):
    openai_stub.script.extend([Reply(status=500), Reply(status=502)])  # the primary, retried once
    openai_stub_b.script.append(Reply.suggestions("Do reserva"))
    pair = FallbackRecommender(adapter(openai_server.base_url), adapter(openai_server_b.base_url))
    result = await pair.recommend(REQUEST)
    assert result.status is IaStatus.OK and [s.text for s in result.suggestions] == ["Do reserva"]
    assert json.loads(result.raw) == {"sugestoes": ["Do reserva"]}
    assert len(openai_stub.requests) == 2 and len(openai_stub_b.requests) == 1
    assert openai_stub_b.requests[0]["messages"] == openai_stub.requests[0]["messages"]


async def test_fallback_answers_when_the_primary_times_out(openai_server, openai_stub, openai_server_b, openai_stub_b):
    openai_stub.script.extend([Reply(content="{}", delay_s=1.0), Reply(content="{}", delay_s=1.0)])
    openai_stub_b.script.append(Reply.suggestions("A tempo"))
    pair = FallbackRecommender(
        adapter(openai_server.base_url, timeout=0.3, deadline=0.3), adapter(openai_server_b.base_url)
    )
    started = time.monotonic()
    result = await pair.recommend(REQUEST)
    assert [s.text for s in result.suggestions] == ["A tempo"]
    assert time.monotonic() - started < 1.0


async def test_an_empty_answer_is_an_answer_not_a_failure(openai_server, openai_stub, openai_server_b, openai_stub_b):
    openai_stub.script.append(Reply.suggestions())
    pair = FallbackRecommender(adapter(openai_server.base_url), adapter(openai_server_b.base_url))
    result = await pair.recommend(REQUEST)
    assert result.status is IaStatus.EMPTY and result.raw == '{"sugestoes": []}'
    assert openai_stub_b.requests == []


async def test_when_both_fail_the_result_keeps_both_failures(
    openai_server, openai_stub, openai_server_b, openai_stub_b
):
    openai_stub.script.append(Reply(content="Desculpe, não entendi."))  # prose: an error, not retried
    openai_stub_b.script.extend([Reply(status=500, body='{"error": "b down"}')] * 2)
    primary = adapter(openai_server.base_url)
    fallback = OpenAICompatibleRecommender(
        openai.AsyncOpenAI(api_key="k", base_url=openai_server_b.base_url, max_retries=1), "m", provider="grok"
    )
    result = await FallbackRecommender(primary, fallback).recommend(REQUEST)
    assert result.status is IaStatus.ERROR and result.suggestions == ()
    assert result.provider == "openai>grok"
    assert "Desculpe, não entendi." in result.error and "HTTP 500" in result.error and "b down" in result.error


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


async def test_server_error_is_retried_once_then_succeeds(openai_server, openai_stub):
    openai_stub.script.extend([Reply(status=503), Reply.suggestions("depois do 503")])
    result = await adapter(openai_server.base_url).recommend(REQUEST)
    assert [s.text for s in result.suggestions] == ["depois do 503"]
    assert len(openai_stub.requests) == 2


async def test_a_refused_request_is_not_retried(openai_server, openai_stub):
    openai_stub.script.extend([Reply(status=400, body='{"error": {"message": "bad model"}}'), Reply.suggestions("x")])
    result = await adapter(openai_server.base_url).recommend(REQUEST)
    assert result.status is IaStatus.ERROR and "bad model" in result.error
    assert len(openai_stub.requests) == 1


async def test_the_deadline_bounds_the_retry_wait_a_server_asks_for(openai_server, openai_stub):
    # The SDK would honour Retry-After up to two minutes; the counter cannot wait that long.
    openai_stub.script.extend([Reply(status=429, headers={"Retry-After": "30"}), Reply.suggestions("tarde")])
    started = time.monotonic()
    result = await adapter(openai_server.base_url, deadline=0.5).recommend(REQUEST)
    assert result.status is IaStatus.TIMEOUT and "0.5 s" in result.error
    assert time.monotonic() - started < 2.0
    assert len(openai_stub.requests) == 1


async def test_the_system_prompt_can_come_from_the_shop(openai_server, openai_stub):
    prompt = "Você ajuda no balcão de uma papelaria. No máximo {max_suggestions} sugestões em JSON."
    await adapter(openai_server.base_url, system_prompt=prompt).recommend(REQUEST)
    system = openai_stub.requests[-1]["messages"][0]
    assert system == {
        "role": "system",
        "content": "Você ajuda no balcão de uma papelaria. No máximo 3 sugestões em JSON.",
    }


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


def test_the_sdk_warm_up_runs_offline_once_per_process():
    # One completion through the SDK against an in-process transport: no socket is opened (its host
    # cannot resolve), and building an adapter pays it at start-up rather than on the first customer.
    from balto.adapters.openai_llm import warm_up_sdk

    warm_up_sdk.__wrapped__()
    adapter("http://127.0.0.1:9/v1")
    adapter("http://127.0.0.1:9/v1")
    assert warm_up_sdk.cache_info().currsize == 1
