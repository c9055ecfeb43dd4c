"""The playbook: prepared cards that phrases at the counter trigger at once, and the checklist an attendant
should cover in a conversation. Pure rules; the file format lives in an adapter."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache

from balto.domain.interaction import Suggestion

ATENDENTE = "atendente"
CLIENTE = "cliente"
ROLES = (ATENDENTE, CLIENTE)

DEFAULT_COOLDOWN_S = 60.0
DEFAULT_MAX_SUGGESTIONS = 3
DEFAULT_CHECKLIST_THRESHOLD = 0.8
TOKEN_MATCH = 0.8  # two words are "the same" from this difflib ratio up: querer~quer, nota~notta
MAX_SUGGESTION_CHARS = 140  # what fits a card; the LLM's suggestions are trimmed to the same

# Words that carry no meaning for the checklist: a phrase is scored on its other words.
STOPWORDS = frozenset(
    {
        *("a", "o", "as", "os", "um", "uma", "uns", "umas", "ao", "aos"),
        *("de", "da", "do", "das", "dos", "em", "na", "no", "nas", "nos", "pela", "pelo"),
        *("e", "ou", "que", "para", "pra", "pro", "por", "com", "se", "me", "te", "lhe", "la", "lo"),
    }
)

_NON_WORD = re.compile(r"[^a-z0-9]+")  # applied after accents are gone and the text is lower case


class PlaybookError(ValueError):
    """A playbook that cannot be used; the message names the file and the rule or item at fault."""


def _strip_accents(text: str) -> str:
    # NFKD splits "ç" into "c" + a combining cedilla; dropping what is not ASCII drops the accents (and
    # symbols such as "°", which are not words anyway). Done in C: this runs on every transcript.
    return text if text.isascii() else unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def fold(text: str) -> str:
    """Text as rules see it: lower case, no accents, punctuation as spaces, single spaces.

    "Dor de CABEÇA!" and "dor de cabeca" fold to the same string, so rules are accent- and
    case-insensitive and punctuation from the transcriber never gets in the way.
    """
    return " ".join(_NON_WORD.sub(" ", _strip_accents(text).lower()).split())


def may_be(speaker: str | None, role: str) -> bool:
    """Whether an utterance by `speaker` may come from `role`.

    An unknown speaker (no speaker identification, or it was unsure) may be anyone: rules and checklist
    items bound to a role still apply, since otherwise they could never fire without speaker ID.
    """
    return speaker is None or fold(speaker) == role


@dataclass(frozen=True)
class PlaybookRule:
    """Phrases or regular expressions -> prepared suggestions, optionally only for one speaker role.

    Phrases match whole words of the folded text. Regular expressions are searched in the folded text
    (lower case, without accents or punctuation) with IGNORECASE; accents in a pattern are removed so
    "cabeça" in a pattern matches "cabeca" in the text.
    """

    id: str
    suggestions: tuple[str, ...]
    phrases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    role: str | None = None
    cooldown_s: float | None = None  # None: the playbook's default
    _padded: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"rule {self.id!r}"
        if not self.id.strip():
            raise PlaybookError("a rule has an empty id")
        if not self.suggestions:
            raise PlaybookError(f"{where}: no suggestions (sugestoes)")
        for text in self.suggestions:
            if not text.strip():
                raise PlaybookError(f"{where}: an empty suggestion")
            if len(text) > MAX_SUGGESTION_CHARS:
                raise PlaybookError(f"{where}: suggestion longer than {MAX_SUGGESTION_CHARS} characters: {text!r}")
        if not self.phrases and not self.patterns:
            raise PlaybookError(f"{where}: needs at least one phrase (frases) or regular expression (regex)")
        if self.role is not None and self.role not in ROLES:
            raise PlaybookError(f"{where}: papel must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.cooldown_s is not None and self.cooldown_s < 0:
            raise PlaybookError(f"{where}: recarga_s must be >= 0, got {self.cooldown_s}")
        folded = tuple(fold(p) for p in self.phrases)
        if any(not p for p in folded):
            raise PlaybookError(f"{where}: a phrase with no words")
        compiled = []
        for pattern in self.patterns:
            try:
                compiled.append(re.compile(_strip_accents(pattern), re.IGNORECASE))
            except re.error as exc:
                raise PlaybookError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None
        # Folded text has single spaces between words, so " phrase " inside " text " is a whole-word match.
        object.__setattr__(self, "_padded", tuple(f" {p} " for p in folded))
        object.__setattr__(self, "_compiled", tuple(compiled))

    def matches(self, folded_text: str, speaker: str | None = None) -> bool:
        """`folded_text` comes from `fold`, done once per utterance rather than once per rule."""
        if self.role is not None and not may_be(speaker, self.role):
            return False
        padded = f" {folded_text} "
        for phrase in self._padded:
            if phrase in padded:
                return True
        return any(r.search(folded_text) for r in self._compiled)


@lru_cache(maxsize=65_536)
def _similarity(a: str, b: str) -> float:
    """difflib's ratio, or 0.0 when it cannot reach TOKEN_MATCH. Counter talk repeats the same words
    all day, so pairs are cached; the cheap upper bounds rule out most pairs before the real ratio."""
    if a == b:
        return 1.0
    matcher = SequenceMatcher(None, a, b)
    if matcher.real_quick_ratio() < TOKEN_MATCH or matcher.quick_ratio() < TOKEN_MATCH:
        return 0.0
    return matcher.ratio()


def phrase_score(phrase_words: tuple[str, ...], heard_words: tuple[str, ...]) -> float:
    """How much of a checklist phrase was said, from 0 to 1, in any order and with misspellings.

    Each meaningful word of the phrase (stopwords aside, unless the phrase is only stopwords) scores
    its best difflib ratio against the words heard when that ratio reaches TOKEN_MATCH, else 0; the
    phrase scores the mean. "cpf na nota" against "vai querer cpf na nota" scores 1.0, against
    "cpf na notta" 0.94, against "cpf" alone 0.5.
    """
    content = tuple(w for w in phrase_words if w not in STOPWORDS) or phrase_words
    if not content or not heard_words:
        return 0.0
    heard = frozenset(heard_words)
    total = 0.0
    for word in content:
        best = 1.0 if word in heard else max(_similarity(word, h) for h in heard)
        if best >= TOKEN_MATCH:
            total += best
    return total / len(content)


@dataclass(frozen=True)
class ChecklistItem:
    """Something the attendant should cover in each conversation, ticked when they say it closely enough."""

    id: str
    text: str
    phrases: tuple[str, ...]
    threshold: float = DEFAULT_CHECKLIST_THRESHOLD
    _words: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"checklist item {self.id!r}"
        if not self.id.strip():
            raise PlaybookError("a checklist item has an empty id")
        if not self.text.strip():
            raise PlaybookError(f"{where}: empty texto")
        if not self.phrases:
            raise PlaybookError(f"{where}: needs at least one phrase (frases)")
        if not 0 < self.threshold <= 1:
            raise PlaybookError(f"{where}: limiar must be in (0, 1], got {self.threshold}")
        words = tuple(tuple(fold(p).split()) for p in self.phrases)
        if any(not w for w in words):
            raise PlaybookError(f"{where}: a phrase with no words")
        object.__setattr__(self, "_words", words)

    def score(self, heard_words: tuple[str, ...]) -> float:
        return max(phrase_score(words, heard_words) for words in self._words)

    def said_in(self, heard_words: tuple[str, ...]) -> bool:
        return self.score(heard_words) >= self.threshold


@dataclass
class RuleCooldowns:
    """When each rule last produced a card at one counter; a rule stays quiet for its cool-down after."""

    last_fired: dict[str, float] = field(default_factory=dict)

    def ready(self, rule_id: str, cooldown_s: float, now: float) -> bool:
        last = self.last_fired.get(rule_id)
        return last is None or now - last >= cooldown_s

    def fired(self, rule_id: str, now: float) -> None:
        self.last_fired[rule_id] = now


@dataclass(frozen=True)
class Playbook:
    """Rules in the order they are written (the first rules win a full card), and the checklist."""

    name: str
    rules: tuple[PlaybookRule, ...] = ()
    checklist: tuple[ChecklistItem, ...] = ()
    cooldown_s: float = DEFAULT_COOLDOWN_S
    max_suggestions: int = DEFAULT_MAX_SUGGESTIONS

    def __post_init__(self) -> None:
        for kind, ids in (("rule", [r.id for r in self.rules]), ("checklist item", [i.id for i in self.checklist])):
            seen: set[str] = set()
            for item_id in ids:
                if item_id in seen:
                    raise PlaybookError(f"two {kind}s with id {item_id!r}")
                seen.add(item_id)
        if self.cooldown_s < 0:
            raise PlaybookError(f"recarga_s must be >= 0, got {self.cooldown_s}")
        if self.max_suggestions < 1:
            raise PlaybookError(f"max_sugestoes must be >= 1, got {self.max_suggestions}")

    def cooldown_for(self, rule: PlaybookRule) -> float:
        return self.cooldown_s if rule.cooldown_s is None else rule.cooldown_s

    def match(self, text: str, speaker: str | None = None) -> tuple[PlaybookRule, ...]:
        folded = fold(text)
        if not folded:
            return ()
        return tuple(rule for rule in self.rules if rule.matches(folded, speaker))

    def cards(
        self,
        text: str,
        speaker: str | None = None,
        *,
        now: float | None = None,
        cooldowns: RuleCooldowns | None = None,
        already_shown: tuple[str, ...] | list[str] = (),
        limit: int | None = None,
    ) -> tuple[Suggestion, ...]:
        """The suggestions to show for one utterance, at most `limit` (default `max_suggestions`).

        A matching rule is skipped while in its cool-down (when `now` and `cooldowns` are given);
        suggestions already shown in this conversation are never repeated (compared folded); a rule
        whose suggestions were all shown, or that did not fit in the card, does not count as fired, so
        its cool-down does not start.
        """
        limit = self.max_suggestions if limit is None else limit
        shown = {fold(s) for s in already_shown}
        picked: list[Suggestion] = []
        for rule in self.match(text, speaker):
            if len(picked) >= limit:
                break
            if now is not None and cooldowns is not None and not cooldowns.ready(rule.id, self.cooldown_for(rule), now):
                continue
            fresh: list[Suggestion] = []
            for suggestion in rule.suggestions:
                key = fold(suggestion)
                if key not in shown and len(picked) + len(fresh) < limit:
                    shown.add(key)
                    fresh.append(Suggestion(suggestion, source="playbook", rule=rule.id))
            if not fresh:
                continue
            picked.extend(fresh)
            if now is not None and cooldowns is not None:
                cooldowns.fired(rule.id, now)
        return tuple(picked)
