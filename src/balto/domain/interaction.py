"""One processing cycle of a counter (a row of `interacoes`) and the values it is made of."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from balto.domain.buffer import BufferLine
from balto.domain.speaker import SpeakerMatch

NENHUMA = "Nenhuma"


class IaStatus(StrEnum):
    """What happened to the LLM in this cycle; tells apart the two ways recomendacao_gerada is NULL."""

    NOT_CALLED = "nao_chamada"
    OK = "ok"
    EMPTY = "vazia"
    ERROR = "erro"
    TIMEOUT = "timeout"


class SttStatus(StrEnum):
    """What happened to the transcription of a cycle's segment (NULL on rows no segment started)."""

    OK = "ok"  # a provider answered with text
    EMPTY = "vazia"  # a provider answered with no text: nothing said, or only what it invented and was dropped
    ERROR = "erro"  # every provider failed; the row is stored with an empty transcript and the reason


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None = None
    confidence: float | None = None
    provider: str = ""
    latency_ms: float | None = None


@dataclass(frozen=True)
class Suggestion:
    text: str
    source: str = "llm"  # "llm" or "playbook"
    rule: str | None = None  # the playbook rule that produced it


@dataclass(frozen=True)
class RecommendationResult:
    """The outcome of one recommender call. `raw` is whatever the provider sent back, verbatim."""

    status: IaStatus
    suggestions: tuple[Suggestion, ...] = ()
    raw: str | None = None
    provider: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RecommendationRequest:
    """What a recommender gets: the lines that triggered it and what the attendant already saw."""

    balcao_id: str
    lines: tuple[BufferLine, ...]
    history: tuple[BufferLine, ...] = ()  # earlier lines of the conversation, for context
    already_suggested: tuple[str, ...] = ()
    at: float | None = None  # when it was asked (epoch seconds): rule cool-downs count from here

    @property
    def context(self) -> str:
        """The conversation as the LLM reads it, one line per utterance, labelled by role when known."""
        return "\n".join(
            f"{line.speaker}: {line.text}" if line.speaker else line.text for line in (*self.history, *self.lines)
        )


def format_suggestions(suggestions: tuple[Suggestion, ...] | list[Suggestion]) -> str:
    return " | ".join(f"S: {s.text}" for s in suggestions)


@dataclass
class Interaction:
    """A row of `interacoes`: one cycle of transcription and, maybe, an LLM call.

    The NULL vs "Nenhuma" contract of spec section 3.2 lives in `recomendacao_gerada`:
    NULL when the LLM was not called (or the call failed: see `ia_status`), the literal "Nenhuma" when
    it was called and gave no suggestion, else "S: a | S: b". Only the LLM ("the AI") writes it: the
    playbook's cards on this cycle's segment are kept apart in `playbook_suggestions`, so a playbook
    hit never turns NULL into something else.
    """

    balcao_id: str
    conexao_id: str
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    id: int | None = None  # assigned by the database
    transcricao: str | None = None  # the text of this cycle's segment, if a segment started it
    transcricao_completa: str | None = None  # the context sent (or that would be sent) to the LLM
    segmento_inicio: float | None = None  # seconds of audio since the stream began
    segmento_fim: float | None = None
    buffer_acao: str | None = None
    ia_status: IaStatus = IaStatus.NOT_CALLED
    suggestions: tuple[Suggestion, ...] = ()  # what the LLM answered, shown to the attendant or not
    grok_raw_response: str | None = None
    ia_provider: str | None = None  # which provider answered (the fallback's name when it stepped in)
    conversa_id: str | None = None
    playbook_suggestions: tuple[Suggestion, ...] = ()  # the playbook card shown for this segment
    checklist: dict[str, bool] | None = None  # the conversation's checklist after this cycle
    speaker: SpeakerMatch | None = None
    stt_provider: str | None = None  # who served the transcript (SMART_ROUTING may fail over)
    stt_latency_ms: float | None = None
    stt_status: SttStatus | None = None
    stt_error: str | None = None  # why every provider failed, when stt_status is "erro"
    ts_audio_received: float | None = None
    ts_segment_closed: float | None = None
    ts_trans_req: float | None = None
    ts_trans_resp: float | None = None
    ts_trans_sent: float | None = None
    ts_ai_req: float | None = None
    ts_ai_resp: float | None = None
    ts_rec_sent: float | None = None
    ts_playbook_sent: float | None = None

    @property
    def recomendacao_gerada(self) -> str | None:
        if self.ia_status is IaStatus.OK and self.suggestions:
            return format_suggestions(self.suggestions)
        if self.ia_status in (IaStatus.OK, IaStatus.EMPTY):
            return NENHUMA
        return None

    @property
    def speaker_data(self) -> str | None:
        return None if self.speaker is None else self.speaker.to_json()

    def record_transcript(self, transcript: Transcript) -> None:
        self.transcricao = transcript.text
        self.stt_provider = transcript.provider or None
        self.stt_latency_ms = transcript.latency_ms
        self.stt_status = SttStatus.OK if transcript.text.strip() else SttStatus.EMPTY

    def record_stt_failure(self, error: str) -> None:
        """No provider could transcribe the segment: the cycle is still a row, with an empty transcript."""
        self.transcricao = ""
        self.stt_status = SttStatus.ERROR
        self.stt_error = error

    def record_ai(self, result: RecommendationResult, requested_at: float, answered_at: float) -> None:
        self.ts_ai_req = requested_at
        self.ts_ai_resp = answered_at
        self.ia_status = result.status
        if result.status is IaStatus.OK and not result.suggestions:
            self.ia_status = IaStatus.EMPTY
        self.suggestions = result.suggestions
        self.grok_raw_response = result.raw if result.raw is not None else result.error
        self.ia_provider = result.provider


@dataclass
class Feedback:
    """A counter's verdict on the cards of one interaction: did they help?"""

    interacao_uuid: str
    balcao_id: str
    util: bool
    origem: str | None = None  # "llm" or "playbook" when the client says which card; None: the row's cards
    conexao_id: str | None = None
    id: int | None = None  # assigned by the database
    created_at: float | None = None
