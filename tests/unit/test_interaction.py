"""The NULL vs "Nenhuma" contract of spec section 3.2."""

import json

from balto.domain.interaction import IaStatus, Interaction, RecommendationResult, Suggestion
from balto.domain.speaker import SpeakerMatch, SpeakerScore


def interaction() -> Interaction:
    return Interaction(balcao_id="B1", conexao_id="c1")


def test_not_called_is_null():
    assert interaction().recomendacao_gerada is None


def test_called_with_no_suggestion_is_nenhuma():
    row = interaction()
    row.record_ai(RecommendationResult(IaStatus.OK, (), raw='{"sugestoes": []}'), 1.0, 2.0)
    assert row.recomendacao_gerada == "Nenhuma"
    assert row.ia_status is IaStatus.EMPTY
    assert row.grok_raw_response == '{"sugestoes": []}'
    assert (row.ts_ai_req, row.ts_ai_resp) == (1.0, 2.0)


def test_suggestions_are_logged_in_the_specs_format():
    row = interaction()
    result = RecommendationResult(IaStatus.OK, (Suggestion("Ofereça dipirona"), Suggestion("Pergunte a idade")))
    row.record_ai(result, 1.0, 2.0)
    assert row.recomendacao_gerada == "S: Ofereça dipirona | S: Pergunte a idade"


def test_a_failed_call_is_null_not_nenhuma_and_keeps_the_error():
    for status in (IaStatus.ERROR, IaStatus.TIMEOUT):
        row = interaction()
        row.record_ai(RecommendationResult(status, error="HTTP 500: boom"), 1.0, 2.0)
        assert row.recomendacao_gerada is None
        assert row.ia_status is status
        assert row.grok_raw_response == "HTTP 500: boom"
        assert row.ts_ai_req == 1.0


def test_unparseable_reply_keeps_the_raw_reply():
    row = interaction()
    row.record_ai(RecommendationResult(IaStatus.ERROR, raw="não sei", error="resposta sem JSON"), 1.0, 2.0)
    assert row.grok_raw_response == "não sei"
    assert row.recomendacao_gerada is None


def test_speaker_data_is_the_json_list_of_probabilities():
    row = interaction()
    assert row.speaker_data is None
    row.speaker = SpeakerMatch(
        "p1",
        0.81,
        (SpeakerScore("p1", "Ana", "atendente", 0.81, 0.9), SpeakerScore("desconhecido", None, None, 0.0, 0.1)),
    )
    data = json.loads(row.speaker_data)
    assert data[0] == {"id": "p1", "nome": "Ana", "papel": "atendente", "score": 0.81, "prob": 0.9}
    assert SpeakerMatch.from_json(row.speaker_data).top_id == "p1"
