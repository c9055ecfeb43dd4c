"""The conversation buffer: when accumulated transcript goes to the LLM, and when it is thrown away."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class BufferAction(StrEnum):
    WAIT = "aguardando"
    FIRE = "disparar"
    DISCARD = "descartado"


class TriggerReason(StrEnum):
    ACCUMULATED = "acumulo"  # rule 1: more than 10 pending words
    TIME = "tempo"  # rule 2: more than 5 s since the last send, with text pending
    LONG_GAP = "gap_longo"  # rule 3: stray words after a long silence, discarded
    RESUME = "retomada"  # rule 4: a substantial utterance after a pause, a new topic


@dataclass(frozen=True)
class BufferDecision:
    action: BufferAction
    reason: TriggerReason | None = None

    @property
    def fires(self) -> bool:
        return self.action is BufferAction.FIRE


@dataclass(frozen=True)
class BufferLine:
    text: str
    at: float
    speaker: str | None = None  # role label, e.g. "Atendente" / "Cliente", when speaker ID knows it


def count_words(text: str) -> int:
    return len(text.split())


@dataclass
class ConversationBuffer:
    """Accumulates transcribed text and decides when it is sent to the LLM (spec section 2.4).

    Times are seconds on any monotonic scale, passed in by the caller (no clock is read here).
    Silence is acoustic: the caller says when each utterance started and ended (when its audio
    arrived), so a slow transcription does not look like a pause.

    `offer(text, now)` appends a line and evaluates, in this order:

    3. Long gap: the silence before this text (from the end of the previous utterance to the start
       of this one, or from the buffer's creation when there was none) is more than `long_gap_s`
       (45 s) and the pending text, this line included, has at most `long_gap_max_words` (2) words:
       the pending text is discarded. A stray "Ok" after the conversation never reaches the LLM.
    4. Resume: the silence before this text is more than `resume_gap_s` (5 s) and the pending text
       has more than `resume_min_words` (3) words: fire at once, a new topic has started.
    1. Accumulation: more than `max_words` (10) pending words: fire.
    2. Time: more than `max_wait_s` (5 s) since the reference time: fire.

    `tick(now)` is called periodically and applies rules 1 and 2 only, so pending text goes out
    within about 5 s even when nobody speaks again.

    The reference time for rule 2 is the later of the last send and the arrival of the oldest pending
    line: text waits up to 5 s for company, never less because an earlier send was long ago. (Were it
    the last send alone, any text after a pause would fire at once and rule 4 would mean nothing.)

    Boundaries are strict, as the spec words them: 10 words wait, 11 fire; 5.0 s waits, 5.01 s fires;
    45.0 s of silence is not a long gap.

    The buffer only decides. When the caller actually sends (it may hold off while an LLM call is
    still in flight), it calls `take(now)`, which empties the pending lines and restarts the clock.
    """

    max_words: int = 10
    max_wait_s: float = 5.0
    long_gap_s: float = 45.0
    long_gap_max_words: int = 2
    resume_gap_s: float = 5.0
    resume_min_words: int = 3
    created_at: float = 0.0
    pending: list[BufferLine] = field(default_factory=list)
    last_send_at: float | None = None
    last_speech_end: float | None = None

    @property
    def pending_words(self) -> int:
        return sum(count_words(line.text) for line in self.pending)

    @property
    def pending_text(self) -> str:
        return " ".join(line.text for line in self.pending)

    def offer(
        self,
        text: str,
        now: float,
        speaker: str | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
    ) -> BufferDecision:
        """Add an utterance transcribed at `now`, spoken from `started_at` to `ended_at` (default `now`)."""
        text = text.strip()
        if not text:
            return self.tick(now)
        previous = self.last_speech_end if self.last_speech_end is not None else self.created_at
        silence = (now if started_at is None else started_at) - previous
        self.last_speech_end = max(previous, now if ended_at is None else ended_at)
        self.pending.append(BufferLine(text, now, speaker))
        words = self.pending_words
        if silence > self.long_gap_s and words <= self.long_gap_max_words:
            self.pending.clear()
            return BufferDecision(BufferAction.DISCARD, TriggerReason.LONG_GAP)
        if silence > self.resume_gap_s and words > self.resume_min_words:
            return BufferDecision(BufferAction.FIRE, TriggerReason.RESUME)
        return self.tick(now)

    def tick(self, now: float) -> BufferDecision:
        if not self.pending:
            return BufferDecision(BufferAction.WAIT)
        if self.pending_words > self.max_words:
            return BufferDecision(BufferAction.FIRE, TriggerReason.ACCUMULATED)
        if now - self._reference_time() > self.max_wait_s:
            return BufferDecision(BufferAction.FIRE, TriggerReason.TIME)
        return BufferDecision(BufferAction.WAIT)

    def take(self, now: float) -> list[BufferLine]:
        lines, self.pending = self.pending, []
        self.last_send_at = now
        return lines

    def _reference_time(self) -> float:
        oldest = self.pending[0].at
        return oldest if self.last_send_at is None else max(self.last_send_at, oldest)
