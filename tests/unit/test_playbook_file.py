"""Playbook files: YAML or JSON into domain rules; every mistake is refused naming the file and the rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from balto.adapters.playbook import load_playbook
from balto.app.settings import default_playbook_file
from balto.domain.playbook import PlaybookError

GOOD = """
nome: loja
recarga_s: 30
max_sugestoes: 2
regras:
  - id: febre
    frases: [febre, "temperatura alta"]
    regex: ['\\bfebr\\w*']
    papel: Cliente
    recarga_s: 10
    sugestoes:
      - Pergunte a temperatura medida
checklist:
  - id: cpf
    texto: Pedir o CPF
    frases: cpf na nota
    limiar: 0.7
"""


def write(tmp_path: Path, text: str, name: str = "playbook.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_yaml_playbook_becomes_domain_rules(tmp_path):
    playbook = load_playbook(write(tmp_path, GOOD))
    assert (playbook.name, playbook.cooldown_s, playbook.max_suggestions) == ("loja", 30.0, 2)
    (rule,) = playbook.rules
    assert (rule.id, rule.phrases, rule.role, rule.cooldown_s) == (
        "febre",
        ("febre", "temperatura alta"),
        "cliente",
        10.0,
    )
    (item,) = playbook.checklist
    assert (item.id, item.text, item.phrases, item.threshold) == ("cpf", "Pedir o CPF", ("cpf na nota",), 0.7)
    assert [c.text for c in playbook.cards("Ele está febril", "Cliente")] == ["Pergunte a temperatura medida"]


def test_a_json_playbook_works_the_same(tmp_path):
    data = {"regras": [{"id": "r", "frases": ["tosse"], "sugestoes": ["Pergunte se é seca"]}]}
    playbook = load_playbook(write(tmp_path, json.dumps(data), "loja.json"))
    assert playbook.name == "loja" and playbook.match("muita tosse")


def test_the_shipped_pharmacy_playbook_is_valid_and_useful():
    playbook = load_playbook(default_playbook_file())
    ids = {r.id for r in playbook.rules}
    assert {"dor_de_cabeca", "febre", "gripe_resfriado", "antibiotico", "generico", "gestante", "crianca"} <= ids
    assert {"alergia", "pressao"} <= ids
    assert {i.id for i in playbook.checklist} >= {"cpf_nota", "fidelidade", "posologia"}
    assert [r.id for r in playbook.match("Você tem algum que me dupa da dor de cabeça?")] == ["dor_de_cabeca"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("regras: [", "not valid YAML"),
        ("- só uma lista", "must be a mapping"),
        ("nome: vazio", "no rules (regras) and no checklist"),
        ("regras:\n  - id: a\n    frase: [x]\n    sugestoes: [y]", "rule 'a': unknown key 'frase'"),
        ("regras:\n  - frases: [x]\n    sugestoes: [y]", "rule #1: 'id' must be non-empty text"),
        ("regras:\n  - id: a\n    frases: [x]", "rule 'a': no suggestions"),
        (
            "regras:\n  - id: a\n    frases: [sim, no]\n    sugestoes: [y]",
            "rule 'a': 'frases' must hold only texts (quote it)",
        ),
        ("regras:\n  - id: a\n    regex: ['(']\n    sugestoes: [y]", "rule 'a': invalid regular expression '('"),
        ("regras:\n  - id: a\n    frases: [x]\n    papel: gerente\n    sugestoes: [y]", "rule 'a': papel"),
        ("regras:\n  - id: a\n    frases: [x]\n    recarga_s: logo\n    sugestoes: [y]", "rule 'a': 'recarga_s'"),
        ("regras:\n  - just text", "rule #1: must be a mapping"),
        ("regras: {a: 1}", "'regras' must be a list"),
        ("checklist:\n  - id: c\n    texto: t\n    frases: [x]\n    limiar: 2", "checklist item 'c': limiar"),
        ("checklist:\n  - id: c\n    frases: [x]", "checklist item 'c': 'texto' must be non-empty"),
        (
            "max_sugestoes: 1.5\nregras: []\nchecklist: [{id: c, texto: t, frases: [x]}]",
            "'max_sugestoes' must be an integer",
        ),
        (
            "regras:\n  - {id: a, frases: [x], sugestoes: [y]}\n  - {id: a, frases: [z], sugestoes: [w]}",
            "two rules with id 'a'",
        ),
    ],
)
def test_mistakes_are_refused_naming_the_file_and_the_rule(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_a_missing_file_is_refused_naming_it(tmp_path):
    with pytest.raises(PlaybookError, match="cannot read the playbook"):
        load_playbook(tmp_path / "nao_existe.yaml")
