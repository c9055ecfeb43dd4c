"""A conversation at the counter: one customer, from the first words to a long silence or the hang-up.

It scopes what must not repeat (cards already shown) and what must be covered (the checklist); a new
conversation starts both afresh.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from balto.domain.interaction import Suggestion
from balto.domain.playbook import ATENDENTE, ChecklistItem, fold, may_be

DEFAULT_END_SILENCE_S = 60.0


@dataclass
class Checklist:
    """Which items the attendant has covered in this conversation. Items tick themselves, never untick."""

    items: tuple[ChecklistItem, ...] = ()
    done: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for item in self.items:
            self.done.setdefault(item.id, False)

    def hear(self, text: str, speaker: str | None = None) -> tuple[ChecklistItem, ...]:
        """Tick the items this utterance covers; returns those newly ticked.

        Only the attendant's speech counts. An utterance whose speaker is unknown may be the
        attendant's (see `may_be`), so it counts too; a known customer's never does.
        """
        if not self.items or not may_be(speaker, ATENDENTE):
            return ()
        words = tuple(fold(text).split())
        if not words:
            return ()
        ticked = tuple(item for item in self.items if not self.done[item.id] and item.said_in(words))
        for item in ticked:
            self.done[item.id] = True
        return ticked

    def snapshot(self) -> dict[str, bool]:
        return dict(self.done)


@dataclass
class Conversation:
    """Times are epoch seconds of when audio arrived, as the buffer measures silence."""

    started_at: float
    last_speech_end: float
    checklist: Checklist = field(default_factory=Checklist)
    shown: list[str] = field(default_factory=list)  # every card text shown, LLM's and playbook's
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _shown_folded: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def start(cls, at: float, checklist: tuple[ChecklistItem, ...] = ()) -> Conversation:
        return cls(started_at=at, last_speech_end=at, checklist=Checklist(checklist))

    def heard(self, until: float) -> None:
        """Speech went on until `until`: the silence that ends the conversation counts from there."""
        self.last_speech_end = max(self.last_speech_end, until)

    def is_over(self, now: float, end_silence_s: float) -> bool:
        """More than `end_silence_s` of silence since the last speech (strictly: 60.0 s is not over)."""
        return now - self.last_speech_end > end_silence_s

    def admit(self, suggestions: tuple[Suggestion, ...]) -> tuple[Suggestion, ...]:
        """The suggestions not yet shown in this conversation (compared folded), now recorded as shown."""
        fresh: list[Suggestion] = []
        for suggestion in suggestions:
            key = fold(suggestion.text)
            if key in self._shown_folded:
                continue
            self._shown_folded.add(key)
            self.shown.append(suggestion.text)
            fresh.append(suggestion)
        return tuple(fresh)
