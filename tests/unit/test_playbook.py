"""Playbook rules: accent- and case-insensitive phrases and regexes, roles, cool-down, no repeats."""

from __future__ import annotations

import pytest

from balto.domain.playbook import (
    Playbook,
    PlaybookError,
    PlaybookRule,
    RuleCooldowns,
    fold,
    may_be,
)

HEADACHE = PlaybookRule(
    "dor_de_cabeca",
    suggestions=("Pergunte há quanto tempo dói", "Pergunte se tem alergia a dipirona"),
    phrases=("dor de cabeça", "enxaqueca"),
)
PRESSURE = PlaybookRule(
    "pressao", suggestions=("Ofereça aferir a pressão",), patterns=(r"\bpress[aã]o (alta|baixa)\b",)
)
PRESCRIPTION = PlaybookRule(
    "receita", suggestions=("Peça a receita para o antibiótico",), phrases=("antibiotico",), role="cliente"
)


def test_fold_drops_case_accents_and_punctuation():
    assert fold("  Dor de CABEÇA!!  Você   tem? ") == "dor de cabeca voce tem"
    assert fold("Pressão-alta, já.") == "pressao alta ja"
    assert fold("...") == ""


@pytest.mark.parametrize(
    "text",
    ["Estou com dor de cabeça", "DOR DE CABECA", "dor de cabeça.", "uma Enxaqueca terrível", "dor  de\ncabeça"],
)
def test_phrases_match_whatever_the_accents_case_and_punctuation(text):
    assert Playbook("p", (HEADACHE,)).match(text) == (HEADACHE,)


@pytest.mark.parametrize("text", ["dor de barriga", "cabeça", "dores de cabeçalho", "enxaquecas"])
def test_phrases_match_whole_words_only(text):
    assert Playbook("p", (HEADACHE,)).match(text) == ()


def test_regex_runs_on_the_folded_text_and_its_accents_are_ignored():
    playbook = Playbook("p", (PRESSURE,))
    assert playbook.match("Minha PRESSÃO ALTA voltou") == (PRESSURE,)
    assert playbook.match("a pressao baixa") == (PRESSURE,)
    assert playbook.match("pressão arterial") == ()
    accented = PlaybookRule("r", ("x",), patterns=("cabeça (dói|doendo)",))
    assert Playbook("p", (accented,)).match("A CABECA DOENDO") == (accented,)
    assert Playbook("p", (accented,)).match("minha cabeça dói") == (accented,)
    assert Playbook("p", (accented,)).match("a cabeça não dói") == ()


def test_role_filter_skips_a_known_other_role_but_not_an_unknown_speaker():
    playbook = Playbook("p", (PRESCRIPTION,))
    assert playbook.match("preciso de um antibiótico", "Cliente") == (PRESCRIPTION,)
    assert playbook.match("preciso de um antibiótico", None) == (PRESCRIPTION,)
    assert playbook.match("esse antibiótico precisa de receita", "Atendente") == ()
    assert may_be(None, "atendente") and may_be("ATENDENTE", "atendente") and not may_be("Cliente", "atendente")


def test_cards_come_in_rule_order_capped_and_tagged_with_their_rule():
    playbook = Playbook("p", (HEADACHE, PRESSURE), max_suggestions=2)
    cards = playbook.cards("dor de cabeça e pressão alta")
    assert [(c.text, c.source, c.rule) for c in cards] == [
        ("Pergunte há quanto tempo dói", "playbook", "dor_de_cabeca"),
        ("Pergunte se tem alergia a dipirona", "playbook", "dor_de_cabeca"),
    ]


def test_suggestions_already_shown_are_not_repeated_whatever_the_accents():
    playbook = Playbook("p", (HEADACHE, PRESSURE))
    cards = playbook.cards("dor de cabeça, pressão alta", already_shown=["PERGUNTE HA QUANTO TEMPO DOI"])
    assert [c.text for c in cards] == ["Pergunte se tem alergia a dipirona", "Ofereça aferir a pressão"]
    assert playbook.cards("dor de cabeça", already_shown=list(HEADACHE.suggestions)) == ()


def test_a_rule_stays_quiet_for_its_cool_down():
    playbook = Playbook("p", (PRESSURE,), cooldown_s=60.0)
    cooldowns = RuleCooldowns()
    assert playbook.cards("pressão alta", now=100.0, cooldowns=cooldowns)
    assert playbook.cards("pressão alta", now=159.99, cooldowns=cooldowns) == ()
    assert playbook.cards("pressão alta", now=160.0, cooldowns=cooldowns)  # exactly the cool-down: ready
    assert cooldowns.last_fired == {"pressao": 160.0}


def test_a_rule_can_have_its_own_cool_down():
    quick = PlaybookRule("rapida", ("Ofereça água",), phrases=("sede",), cooldown_s=5.0)
    playbook = Playbook("p", (quick,), cooldown_s=600.0)
    cooldowns = RuleCooldowns()
    assert playbook.cards("sede", now=0.0, cooldowns=cooldowns)
    assert playbook.cards("sede", now=4.9, cooldowns=cooldowns) == ()
    assert playbook.cards("que sede", now=5.0, cooldowns=cooldowns)


def test_a_rule_with_nothing_new_to_show_does_not_start_its_cool_down():
    playbook = Playbook("p", (PRESSURE,), cooldown_s=60.0)
    cooldowns = RuleCooldowns()
    assert playbook.cards("pressão alta", now=0.0, cooldowns=cooldowns, already_shown=PRESSURE.suggestions) == ()
    assert cooldowns.last_fired == {}
    assert playbook.cards("pressão alta", now=1.0, cooldowns=cooldowns)


def test_a_full_card_leaves_later_rules_unfired():
    playbook = Playbook("p", (HEADACHE, PRESSURE), max_suggestions=2)
    cooldowns = RuleCooldowns()
    playbook.cards("dor de cabeça e pressão alta", now=0.0, cooldowns=cooldowns)
    assert cooldowns.last_fired == {"dor_de_cabeca": 0.0}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PlaybookRule("r", ()), "no suggestions"),
        (lambda: PlaybookRule("r", ("x",)), "at least one phrase"),
        (lambda: PlaybookRule("r", ("x",), patterns=("(",)), "invalid regular expression"),
        (lambda: PlaybookRule("r", ("x",), phrases=("a",), role="gerente"), "papel"),
        (lambda: PlaybookRule("r", ("x",), phrases=("?!",)), "no words"),
        (lambda: PlaybookRule("r", ("x" * 141,), phrases=("a",)), "longer than 140"),
        (lambda: PlaybookRule("r", ("x",), phrases=("a",), cooldown_s=-1), "recarga_s"),
        (lambda: Playbook("p", (HEADACHE, HEADACHE)), "two rules with id 'dor_de_cabeca'"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(make, message):
    with pytest.raises(PlaybookError) as info:
        make()
    assert message in str(info.value)
