"""Checklist items tick on the attendant's words, fuzzily; a conversation scopes cards and checklist."""

from __future__ import annotations

import pytest

from balto.domain.conversation import Checklist, Conversation
from balto.domain.interaction import Suggestion
from balto.domain.playbook import ChecklistItem, PlaybookError, fold, phrase_score

CPF = ChecklistItem("cpf_nota", "Pedir o CPF na nota", phrases=("cpf na nota", "quer colocar o cpf"))
FIDELIDADE = ChecklistItem("fidelidade", "Oferecer o programa de fidelidade", phrases=("programa de fidelidade",))


def words(text: str) -> tuple[str, ...]:
    return tuple(fold(text).split())


@pytest.mark.parametrize(
    ("phrase", "heard", "score"),
    [
        ("cpf na nota", "vai querer CPF na nota?", 1.0),
        ("cpf na nota", "cpf na notta", (1 + 8 / 9) / 2),  # a transcriber's misspelling still counts
        ("cpf na nota", "só o cpf", 0.5),  # stopwords do not count: cpf + nota
        ("quer colocar o cpf", "querer colocar cpf", (0.8 + 1 + 1) / 3),  # quer~querer: ratio 0.8, just counts
        ("cpf na nota", "cpf na note", 0.5),  # nota~note: ratio 0.75, below 0.8: does not count
        ("na", "na", 1.0),  # a phrase of stopwords only is scored on them
        ("cpf", "", 0.0),
    ],
)
def test_phrase_score(phrase, heard, score):
    assert phrase_score(words(phrase), words(heard)) == pytest.approx(score)


def test_item_ticks_at_its_threshold_and_not_below():
    # 3 of the 4 meaningful words said: 0.75.
    item = ChecklistItem("x", "x", phrases=("explicar posologia tomar comprimido",), threshold=0.75)
    assert item.said_in(words("explicar a posologia de tomar"))
    stricter = ChecklistItem("x", "x", phrases=("explicar posologia tomar comprimido",), threshold=0.76)
    assert not stricter.said_in(words("explicar a posologia de tomar"))


def test_checklist_ticks_on_the_attendants_words_not_verbatim():
    checklist = Checklist((CPF, FIDELIDADE))
    assert checklist.hear("Vai querer o CPF na nota?", "Atendente") == (CPF,)
    assert checklist.snapshot() == {"cpf_nota": True, "fidelidade": False}
    assert checklist.hear("Quer colocar o CPF?", "Atendente") == ()  # already ticked: not again
    assert checklist.hear("O senhor conhece nosso PROGRAMA DE FIDELIDADE?", None) == (FIDELIDADE,)


def test_a_customer_saying_it_does_not_tick():
    checklist = Checklist((CPF,))
    assert checklist.hear("coloca o cpf na nota", "Cliente") == ()
    assert checklist.snapshot() == {"cpf_nota": False}


def test_an_unknown_speaker_may_be_the_attendant():
    checklist = Checklist((CPF,))
    assert checklist.hear("cpf na nota?", None) == (CPF,)


def test_unrelated_speech_ticks_nothing():
    checklist = Checklist((CPF, FIDELIDADE))
    assert checklist.hear("bom dia, em que posso ajudar?", "Atendente") == ()
    assert checklist.hear("", "Atendente") == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "x", "phrases": ()}, "at least one phrase"),
        ({"text": " ", "phrases": ("a",)}, "empty texto"),
        ({"text": "x", "phrases": ("a",), "threshold": 0.0}, "limiar"),
        ({"text": "x", "phrases": ("a",), "threshold": 1.2}, "limiar"),
    ],
)
def test_bad_items_are_refused_naming_the_item(kwargs, message):
    with pytest.raises(PlaybookError) as info:
        ChecklistItem("item", **kwargs)
    assert "'item'" in str(info.value) and message in str(info.value)


def test_conversation_ends_after_strictly_more_than_the_silence():
    conversation = Conversation.start(100.0)
    conversation.heard(110.0)
    assert not conversation.is_over(170.0, 60.0)
    assert conversation.is_over(170.01, 60.0)
    conversation.heard(105.0)  # an older segment never moves the end back
    assert conversation.last_speech_end == 110.0


def test_cards_are_admitted_once_per_conversation():
    conversation = Conversation.start(0.0)
    first = (Suggestion("Ofereça água"), Suggestion("Pergunte a idade", source="playbook", rule="r"))
    assert conversation.admit(first) == first
    assert conversation.admit((Suggestion("ofereca AGUA"), Suggestion("Sugira repouso"))) == (
        Suggestion("Sugira repouso"),
    )
    assert conversation.shown == ["Ofereça água", "Pergunte a idade", "Sugira repouso"]
    assert Conversation.start(1.0).admit(first) == first  # a new conversation starts afresh
