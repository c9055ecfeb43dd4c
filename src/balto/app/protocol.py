"""The /ws wire protocol: msgspec Structs for every JSON frame, and the close codes (docs/protocol.md)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgspec

from balto.domain.audio import AudioFormat
from balto.domain.vad import VadPolicy, VadSettingsError

# -- client -> server ----------------------------------------------------------------------------


class AudioSpec(msgspec.Struct, forbid_unknown_fields=True):
    format: str = "auto"
    sample_rate: int = 16_000
    channels: int = 1


class Handshake(msgspec.Struct, forbid_unknown_fields=True):
    api_key: str
    vad_settings: dict[str, Any] | None = None
    transcricao: bool = False
    audio: AudioSpec | None = None


class ClientCommand(msgspec.Struct):
    comando: str


FEEDBACK_ORIGINS = ("llm", "playbook")


class FeedbackCommand(msgspec.Struct, forbid_unknown_fields=True):
    """`{"comando": "feedback", "interacao_id": ..., "util": true|false}`: did the card help?"""

    comando: str
    interacao_id: str
    util: bool
    origem: str | None = None  # which card of that interaction, when the client knows


# -- server -> client ----------------------------------------------------------------------------


class VadSettingsOut(msgspec.Struct):
    threshold_multiplier: float
    min_energy: float


class Conectado(msgspec.Struct, tag_field="comando", tag="conectado"):
    conexao_id: str
    balcao_id: str
    vad_settings: VadSettingsOut
    transcricao: bool


class Transcricao(msgspec.Struct, tag_field="comando", tag="transcricao"):
    texto: str
    inicio: float
    fim: float
    interacao_id: str
    falante: str | None = None  # the role label the LLM reads: "Atendente", "Cliente"
    falante_id: str | None = None  # a profile id, or "desconhecido"
    falante_nome: str | None = None  # the profile's name, or the connection's label (cliente_1, ...)
    falante_papel: str | None = None  # atendente, cliente, ...
    falante_prob: float | None = None  # probability of that answer


class Recomendar(msgspec.Struct, tag_field="comando", tag="recomendar"):
    interacao_id: str
    sugestoes: list[str]
    origem: str  # "llm" or "playbook"


class ChecklistItemOut(msgspec.Struct):
    id: str
    texto: str
    feito: bool


class ChecklistFrame(msgspec.Struct, tag_field="comando", tag="checklist"):
    conversa_id: str
    itens: list[ChecklistItemOut]
    encerrada: bool  # the conversation is over: this is its final state
    interacao_id: str | None = None  # the interaction whose speech ticked an item


class FeedbackRegistrado(msgspec.Struct, tag_field="comando", tag="feedback_registrado"):
    interacao_id: str


class Pong(msgspec.Struct, tag_field="comando", tag="pong"):
    pass


class Encerrado(msgspec.Struct, tag_field="comando", tag="encerrado"):
    interacoes: int


class Erro(msgspec.Struct, tag_field="comando", tag="erro"):
    codigo: str
    mensagem: str


class Encerrando(msgspec.Struct, tag_field="comando", tag="encerrando"):
    """The server is stopping: what was already sent is still processed, then `encerrado` and 1001."""

    prazo_s: float  # how long the server waits for the segments in flight


ServerMessage = (
    Conectado | Transcricao | Recomendar | ChecklistFrame | FeedbackRegistrado | Pong | Encerrado | Erro | Encerrando
)

_encoder = msgspec.json.Encoder()


def encode(message: ServerMessage) -> str:
    return _encoder.encode(message).decode("utf-8")


class CloseCode(IntEnum):
    """WebSocket close codes; 4xxx are Balto's own (RFC 6455 reserves 4000-4999 for applications)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down (after `encerrando` and `encerrado`)
    INTERNAL_ERROR = 1011
    SERVER_FULL = 1013  # WS_MAX_CONNECTIONS reached: try again later
    HANDSHAKE_INVALID = 4400
    API_KEY_INVALID = 4401  # unknown or revoked
    HANDSHAKE_TIMEOUT = 4408
    KEY_CONNECTIONS_EXCEEDED = 4409  # WS_MAX_CONNECTIONS_PER_KEY reached
    SESSION_TOO_LONG = 4410  # WS_MAX_SESSION_S reached
    FRAME_TOO_LARGE = 4413  # WS_MAX_FRAME_BYTES
    AUDIO_FORMAT_INVALID = 4415
    VAD_SETTINGS_INVALID = 4422
    TOO_MANY_FAILED_HANDSHAKES = 4429  # WS_HANDSHAKE_FAILURES_MAX in WS_HANDSHAKE_FAILURES_WINDOW_S
    AUDIO_TOO_FAST = 4431  # more than WS_MAX_AUDIO_AHEAD_S of audio ahead of real time


class CommandError(Exception):
    """A bad command after the handshake: answered with an `erro` frame, the connection stays open."""

    def __init__(self, codigo: str, mensagem: str) -> None:
        super().__init__(mensagem)
        self.codigo = codigo
        self.mensagem = mensagem


class ProtocolError(Exception):
    """A client mistake that ends the connection with an `erro` frame and a close code."""

    def __init__(self, close_code: CloseCode, codigo: str, mensagem: str) -> None:
        super().__init__(mensagem)
        self.close_code = close_code
        self.codigo = codigo
        self.mensagem = mensagem


_handshake_decoder = msgspec.json.Decoder(Handshake)


def parse_handshake(text: str) -> Handshake:
    try:
        handshake = _handshake_decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise ProtocolError(CloseCode.HANDSHAKE_INVALID, "handshake_invalido", f"handshake inválido: {exc}") from None
    except msgspec.DecodeError:
        raise ProtocolError(
            CloseCode.HANDSHAKE_INVALID, "handshake_invalido", "o handshake deve ser um objeto JSON"
        ) from None
    if not handshake.api_key.strip():
        raise ProtocolError(CloseCode.API_KEY_INVALID, "api_key_invalida", "api_key vazia")
    return handshake


def effective_policy(defaults: VadPolicy, handshake: Handshake) -> VadPolicy:
    try:
        return defaults.with_overrides(handshake.vad_settings)
    except VadSettingsError as exc:
        raise ProtocolError(CloseCode.VAD_SETTINGS_INVALID, "vad_settings_invalidas", str(exc)) from None


SUPPORTED_FORMATS = ("auto", "pcm_s16le", "webm", "ogg", "wav")


def audio_format(handshake: Handshake) -> AudioFormat:
    spec = handshake.audio or AudioSpec()
    if spec.format not in SUPPORTED_FORMATS:
        raise ProtocolError(
            CloseCode.AUDIO_FORMAT_INVALID,
            "formato_audio_nao_suportado",
            f"formato de áudio {spec.format!r} não suportado; use um de: {', '.join(SUPPORTED_FORMATS)}",
        )
    if spec.format == "pcm_s16le" and not (8_000 <= spec.sample_rate <= 192_000 and 1 <= spec.channels <= 8):
        raise ProtocolError(
            CloseCode.AUDIO_FORMAT_INVALID,
            "formato_audio_nao_suportado",
            f"PCM de {spec.sample_rate} Hz com {spec.channels} canais não é suportado (8000-192000 Hz, 1-8 canais)",
        )
    return AudioFormat(spec.format, spec.sample_rate, spec.channels)


_command_decoder = msgspec.json.Decoder(ClientCommand)


def parse_command(text: str) -> str | None:
    """The `comando` of a client text frame after the handshake, or None when it has none."""
    try:
        return _command_decoder.decode(text).comando
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


_feedback_decoder = msgspec.json.Decoder(FeedbackCommand)


def parse_feedback(text: str) -> FeedbackCommand:
    try:
        command = _feedback_decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise CommandError("feedback_invalido", f"feedback inválido: {exc}") from None
    if command.origem is not None and command.origem not in FEEDBACK_ORIGINS:
        raise CommandError("feedback_invalido", f"origem deve ser uma de: {', '.join(FEEDBACK_ORIGINS)}")
    return command
