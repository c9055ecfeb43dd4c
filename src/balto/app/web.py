"""The Litestar application: the /ws endpoint for counters and the operator's HTTP endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, WebSocket, get, websocket
from litestar.di import Provide
from litestar.exceptions import WebSocketDisconnect

from balto.app import container as composition
from balto.app.protocol import (
    ChecklistFrame,
    ChecklistItemOut,
    CloseCode,
    CommandError,
    Conectado,
    Encerrado,
    Erro,
    FeedbackRegistrado,
    Pong,
    ProtocolError,
    Recomendar,
    ServerMessage,
    Transcricao,
    VadSettingsOut,
    audio_format,
    effective_policy,
    encode,
    parse_command,
    parse_feedback,
    parse_handshake,
)
from balto.app.session import (
    ChecklistEvent,
    CounterSession,
    PipelineDeps,
    RecommendationEvent,
    SessionEvent,
    TranscriptEvent,
)
from balto.app.settings import Settings
from balto.domain.keys import ApiKey
from balto.ports.audio import DecodeError
from balto.ports.storage import ApiKeyRepository

log = logging.getLogger(__name__)


class _Client:
    """Serialises sends: the session's events and the handler's replies come from different tasks."""

    def __init__(self, socket: WebSocket) -> None:
        self._socket = socket
        self._lock = asyncio.Lock()

    async def send(self, message: ServerMessage) -> None:
        async with self._lock:
            await self._socket.send_data(encode(message))

    async def close(self, code: int, reason: str = "") -> None:
        async with self._lock:
            with contextlib.suppress(Exception):
                await self._socket.close(code=code, reason=reason)


@dataclass
class CounterHub:
    """Accepts counter connections and runs a CounterSession for each."""

    settings: Settings
    api_keys: ApiKeyRepository
    pipeline: PipelineDeps
    sessions: dict[str, CounterSession] = field(default_factory=dict)

    async def serve(self, socket: WebSocket) -> None:
        await socket.accept()
        client = _Client(socket)
        try:
            session = await self._open(socket, client)
        except ProtocolError as exc:
            log.info("handshake refused (%s): %s", exc.codigo, exc.mensagem)
            with contextlib.suppress(Exception):
                await client.send(Erro(exc.codigo, exc.mensagem))
            await client.close(exc.close_code, exc.codigo)
            return
        except WebSocketDisconnect:
            return
        await self._stream(socket, client, session)

    async def _open(self, socket: WebSocket, client: _Client) -> CounterSession:
        try:
            message = await asyncio.wait_for(socket.receive(), self.settings.handshake_timeout_s)
        except TimeoutError:
            raise ProtocolError(
                CloseCode.HANDSHAKE_TIMEOUT,
                "handshake_timeout",
                f"nenhum handshake em {self.settings.handshake_timeout_s:g} s",
            ) from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(detail="closed before handshake")
        text = message.get("text")
        if not isinstance(text, str):
            raise ProtocolError(
                CloseCode.HANDSHAKE_INVALID,
                "handshake_esperado",
                "a primeira mensagem deve ser o handshake JSON, não áudio",
            )
        handshake = parse_handshake(text)
        policy = effective_policy(self.settings.vad, handshake)
        fmt = audio_format(handshake)
        key = await self.api_keys.resolve(handshake.api_key)
        if key is None:
            raise ProtocolError(CloseCode.API_KEY_INVALID, "api_key_invalida", "api_key desconhecida ou revogada")
        conexao_id = uuid.uuid4().hex[:12]
        session = CounterSession(
            self.pipeline,
            balcao_id=key.balcao_id,
            conexao_id=conexao_id,
            policy=policy,
            audio_format=fmt,
            emit=_emitter(client),
            want_transcripts=handshake.transcricao,
        )
        await client.send(
            Conectado(
                conexao_id=conexao_id,
                balcao_id=key.balcao_id,
                vad_settings=VadSettingsOut(policy.threshold_multiplier, policy.min_energy),
                transcricao=handshake.transcricao,
            )
        )
        log.info("balcão %s connected as %s (key %s)", key.balcao_id, conexao_id, _safe(key))
        return session

    async def _stream(self, socket: WebSocket, client: _Client, session: CounterSession) -> None:
        self.sessions[session.conexao_id] = session
        session.start()
        graceful = False
        failure = asyncio.create_task(session.failed.wait())
        try:
            while True:
                receiving = asyncio.ensure_future(socket.receive())
                await asyncio.wait((receiving, failure), return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    raise session.error or DecodeError("audio_invalido", "áudio inválido")
                message = receiving.result()
                if message["type"] == "websocket.disconnect":
                    session.client_gone()
                    break
                data = message.get("bytes")
                if isinstance(data, bytes):
                    await session.feed(data)
                    continue
                text = message.get("text")
                text = text if isinstance(text, str) else ""
                command = parse_command(text)
                if command == "ping":
                    await client.send(Pong())
                elif command == "feedback":
                    await self._feedback(client, session, text)
                elif command == "fim":
                    graceful = True
                    break
                else:
                    await client.send(
                        Erro("comando_desconhecido", f"comando desconhecido: {command!r}; use ping, feedback ou fim")
                    )
        except WebSocketDisconnect:
            session.client_gone()
        except DecodeError as exc:
            # Undecodable audio: say why, close, but keep what was already processed.
            with contextlib.suppress(Exception):
                await client.send(Erro(exc.code, exc.message))
            await client.close(CloseCode.AUDIO_FORMAT_INVALID, exc.code)
            session.client_gone()
        except Exception:
            log.exception("connection %s failed", session.conexao_id)
            session.client_gone()
            await client.close(CloseCode.INTERNAL_ERROR, "erro_interno")
        finally:
            failure.cancel()
            try:
                await session.finish()
            finally:
                self.sessions.pop(session.conexao_id, None)
        if graceful and session.connected:
            error = session.error
            with contextlib.suppress(Exception):
                # The decoder may only find out at the end of the stream that it was not audio.
                await client.send(Erro(error.code, error.message) if error else Encerrado(interacoes=session.stored))
            await client.close(
                CloseCode.AUDIO_FORMAT_INVALID if error else CloseCode.NORMAL, error.code if error else ""
            )
        log.info("connection %s closed after %d interactions", session.conexao_id, session.stored)

    @staticmethod
    async def _feedback(client: _Client, session: CounterSession, text: str) -> None:
        """Answer a feedback command; whatever goes wrong, the connection and its audio carry on."""
        try:
            command = parse_feedback(text)
            known = await session.feedback(command.interacao_id, command.util, command.origem)
        except CommandError as exc:
            await client.send(Erro(exc.codigo, exc.mensagem))
            return
        except Exception:
            log.exception("could not store feedback on %s", session.conexao_id)
            await client.send(Erro("feedback_nao_registrado", "não foi possível registrar o feedback; tente de novo"))
            return
        if known:
            await client.send(FeedbackRegistrado(interacao_id=command.interacao_id))
        else:
            await client.send(
                Erro(
                    "interacao_desconhecida",
                    f"interacao_id {command.interacao_id!r} não é uma interação deste balcão",
                )
            )


def _safe(key: ApiKey) -> str:
    return f"{key.prefix}… (id {key.id})"


def _emitter(client: _Client) -> Callable[[SessionEvent], Any]:
    async def emit(event: SessionEvent) -> None:
        if isinstance(event, TranscriptEvent):
            await client.send(
                Transcricao(
                    texto=event.text,
                    inicio=round(event.start_s, 3),
                    fim=round(event.end_s, 3),
                    interacao_id=event.interaction_uuid,
                    falante=event.speaker,
                )
            )
        elif isinstance(event, RecommendationEvent):
            await client.send(
                Recomendar(
                    interacao_id=event.interaction_uuid,
                    sugestoes=[s.text for s in event.suggestions],
                    origem=event.origin,
                )
            )
        elif isinstance(event, ChecklistEvent):
            await client.send(
                ChecklistFrame(
                    conversa_id=event.conversation_id,
                    itens=[ChecklistItemOut(item.id, item.text, done) for item, done in event.items],
                    encerrada=event.ended,
                    interacao_id=event.interaction_uuid,
                )
            )

    return emit


@websocket("/ws")
async def counter_socket(socket: WebSocket, hub: CounterHub) -> None:
    await hub.serve(socket)


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app(
    settings: Settings | None = None,
    container: composition.Container | None = None,
    on_ready: Callable[[composition.Container], Any] | None = None,
) -> Litestar:
    """The real app. Tests pass a container whose providers they have overridden with fakes."""
    if container is None:
        container = composition.build_container(settings or Settings.from_env())
    state: dict[str, CounterHub] = {}

    async def startup() -> None:
        slow_ms = container.settings().slow_callback_ms
        if slow_ms > 0:
            # Measuring, not serving: asyncio's debug mode logs (logger "asyncio", WARNING) every
            # callback that holds the loop longer than this, which is how stages on the loop are checked.
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = slow_ms / 1000
        await composition.start(container)
        state["hub"] = CounterHub(
            settings=container.settings(),
            api_keys=await composition.resolve(container.api_keys),
            pipeline=await composition.resolve(container.pipeline),
        )
        if on_ready is not None:
            result = on_ready(container)
            if asyncio.iscoroutine(result):
                await result

    async def shutdown() -> None:
        hub = state.get("hub")
        if hub is not None:
            for session in list(hub.sessions.values()):
                await session.aclose()
        await composition.stop(container)

    def provide_hub() -> CounterHub:
        return state["hub"]

    return Litestar(
        route_handlers=[counter_socket, health],
        on_startup=[startup],
        on_shutdown=[shutdown],
        dependencies={"hub": Provide(provide_hub, sync_to_thread=False)},
        logging_config=None,  # the CLI configures logging (text or JSON lines)
    )
