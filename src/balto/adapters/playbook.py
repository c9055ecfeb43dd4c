"""Playbook files (YAML or JSON, docs/playbook.md) read into domain rules, and the playbook as a Recommender."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from balto.domain.interaction import IaStatus, RecommendationRequest, RecommendationResult, Suggestion
from balto.domain.playbook import (
    DEFAULT_CHECKLIST_THRESHOLD,
    DEFAULT_COOLDOWN_S,
    DEFAULT_MAX_SUGGESTIONS,
    ChecklistItem,
    Playbook,
    PlaybookError,
    PlaybookRule,
    RuleCooldowns,
)
from balto.ports.inference import Recommender

T = TypeVar("T")

TOP_KEYS = ("nome", "recarga_s", "max_sugestoes", "regras", "checklist")
RULE_KEYS = ("id", "frases", "regex", "papel", "sugestoes", "recarga_s")
ITEM_KEYS = ("id", "texto", "frases", "limiar")


def load_playbook(path: Path | str) -> Playbook:
    """Read and validate a playbook; any problem is a PlaybookError naming the file and the rule or item."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(f"{path}: cannot read the playbook: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PlaybookError(
            f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}"
        ) from None
    try:
        return parse_playbook(data, default_name=path.stem)
    except PlaybookError as exc:
        raise PlaybookError(f"{path}: {exc}") from None


def parse_playbook(data: Any, default_name: str = "playbook") -> Playbook:
    if not isinstance(data, Mapping):
        raise PlaybookError("the playbook must be a mapping with 'regras' and/or 'checklist'")
    _check_keys(data, TOP_KEYS, "the playbook")
    rules_data = _list(data.get("regras"), "regras")
    items_data = _list(data.get("checklist"), "checklist")
    if not rules_data and not items_data:
        raise PlaybookError("the playbook has no rules (regras) and no checklist")
    rules = tuple(_located(f"rule #{n}", entry, _rule) for n, entry in enumerate(rules_data, 1))
    items = tuple(_located(f"checklist item #{n}", entry, _item) for n, entry in enumerate(items_data, 1))
    return Playbook(
        name=_text(data.get("nome", default_name), "nome"),
        rules=rules,
        checklist=items,
        cooldown_s=_number(data.get("recarga_s", DEFAULT_COOLDOWN_S), "recarga_s"),
        max_suggestions=int(_number(data.get("max_sugestoes", DEFAULT_MAX_SUGGESTIONS), "max_sugestoes", whole=True)),
    )


def _located(where: str, entry: Any, build: Callable[[Mapping[str, Any]], T]) -> T:
    """Errors inside an entry name it by id when it has one, else by its position in the file."""
    if isinstance(entry, Mapping) and isinstance(entry.get("id"), str) and entry["id"].strip():
        where = f"{where.split(' #')[0]} {entry['id']!r}"
    if not isinstance(entry, Mapping):
        raise PlaybookError(f"{where}: must be a mapping, got {type(entry).__name__}")
    try:
        return build(entry)
    except PlaybookError as exc:
        message = str(exc)
        raise PlaybookError(message if message.startswith(where) else f"{where}: {message}") from None


def _rule(entry: Mapping[str, Any]) -> PlaybookRule:
    _check_keys(entry, RULE_KEYS, "")
    cooldown = entry.get("recarga_s")
    return PlaybookRule(
        id=_text(entry.get("id"), "id"),
        suggestions=_texts(entry.get("sugestoes"), "sugestoes"),
        phrases=_texts(entry.get("frases"), "frases"),
        patterns=_texts(entry.get("regex"), "regex"),
        role=_text(entry["papel"], "papel").strip().lower() if entry.get("papel") is not None else None,
        cooldown_s=None if cooldown is None else _number(cooldown, "recarga_s"),
    )


def _item(entry: Mapping[str, Any]) -> ChecklistItem:
    _check_keys(entry, ITEM_KEYS, "")
    return ChecklistItem(
        id=_text(entry.get("id"), "id"),
        text=_text(entry.get("texto"), "texto"),
        phrases=_texts(entry.get("frases"), "frases"),
        threshold=_number(entry.get("limiar", DEFAULT_CHECKLIST_THRESHOLD), "limiar"),
    )


def _check_keys(entry: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [str(k) for k in entry if k not in allowed]
    if unknown:
        prefix = f"{where}: " if where else ""
        raise PlaybookError(f"{prefix}unknown key {unknown[0]!r} (expected one of: {', '.join(allowed)})")


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PlaybookError(f"'{name}' must be a list, got {type(value).__name__}")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PlaybookError(f"'{name}' must be non-empty text, got {value!r}")
    return value.strip()


def _texts(value: Any, name: str) -> tuple[str, ...]:
    """A list of texts; a single text is accepted as a list of one."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise PlaybookError(f"'{name}' must be a list of texts, got {type(value).__name__}")
    for item in items:
        # YAML reads an unquoted `sim`, `no` or `123` as a bool or a number: say so instead of guessing.
        if not isinstance(item, str):
            raise PlaybookError(f"'{name}' must hold only texts (quote it), got {item!r}")
    return tuple(" ".join(item.split()) for item in items)


def _number(value: Any, name: str, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
        raise PlaybookError(f"'{name}' must be {'an integer' if whole else 'a number'}, got {value!r}")
    return float(value)


class PlaybookRecommender(Recommender):
    """The playbook behind the Recommender port: instant, offline, never failing.

    One instance serves every connection; rule cool-downs are kept per balcão, so a counter that
    reconnects does not get the same card again within a rule's cool-down. Cards already shown in the
    conversation come in `request.already_suggested` and are never repeated.
    """

    def __init__(self, playbook: Playbook) -> None:
        self.playbook = playbook
        self._cooldowns: dict[str, RuleCooldowns] = {}

    @property
    def name(self) -> str:
        return "playbook"

    async def recommend(self, request: RecommendationRequest) -> RecommendationResult:
        cooldowns = self._cooldowns.setdefault(request.balcao_id, RuleCooldowns())
        shown = list(request.already_suggested)
        picked: list[Suggestion] = []
        for line in request.lines:
            room = self.playbook.max_suggestions - len(picked)
            if room <= 0:
                break
            cards = self.playbook.cards(
                line.text, line.speaker, now=request.at, cooldowns=cooldowns, already_shown=shown, limit=room
            )
            picked.extend(cards)
            shown.extend(c.text for c in cards)
        raw = json.dumps(
            {"regras": list(dict.fromkeys(s.rule for s in picked)), "sugestoes": [s.text for s in picked]},
            ensure_ascii=False,
        )
        status = IaStatus.OK if picked else IaStatus.EMPTY
        return RecommendationResult(status, tuple(picked), raw=raw, provider=self.name)
