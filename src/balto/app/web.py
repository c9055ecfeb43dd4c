"""The Litestar application: the /ws endpoint for counters and the operator's HTTP endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np
from litestar import Litestar, Response, WebSocket, delete, get, post, websocket
from litestar.connection import ASGIConnection
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, WebSocketDisconnect
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import Body, FromPath, Parameter, SkipValidation

from balto.adapters.ffmpeg import decode_audio_file
from balto.app import container as composition
from balto.app import logcontext
from balto.app.loopwatch import LoopWatchdog
from balto.app.metrics import Metrics
from balto.app.protocol import (
    ChecklistFrame,
    ChecklistItemOut,
    CloseCode,
    CommandError,
    Conectado,
    Encerrado,
    Encerrando,
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
from balto.app.speakers import Enrollment
from balto.domain.keys import ApiKey
from balto.domain.limits import ConnectionSlots, FailedHandshakes, Refusal
from balto.domain.speaker import EnrollmentError, SpeakerProfile
from balto.ports.audio import DecodeError
from balto.ports.storage import ApiKeyRepository, SpeakerProfileRepository

log = logging.getLogger(__name__)

# Handler dependencies, provided by name (create_app). Ports are Protocols, which msgspec cannot check.
Hub = NamedDependency["CounterHub"]
Profiles = NamedDependency[SkipValidation[SpeakerProfileRepository]]
Enrolment = NamedDependency[SkipValidation[Enrollment | None]]


class _Client:
    """Serialises sends: the session's events and the handler's replies come from different tasks."""

    def __init__(self, socket: WebSocket) -> None:
        self._socket = socket
        self._lock = asyncio.Lock()

    async def send(self, message: ServerMessage) -> None:
        async with self._lock:
            try:
                await self._socket.send_data(encode(message))
            except WebSocketDisconnect:
                raise
            except Exception as exc:  # uvicorn's ClientDisconnected and the like: the peer is gone
                raise WebSocketDisconnect(detail=f"client gone while sending: {type(exc).__name__}") from exc

    async def close(self, code: int, reason: str = "") -> None:
        async with self._lock:
            with contextlib.suppress(Exception):
                await self._socket.close(code=code, reason=reason)


@dataclass
class CounterHub:
    """Accepts counter connections and runs a CounterSession for each, within the limits of settings.limits."""

    settings: Settings
    api_keys: ApiKeyRepository
    pipeline: PipelineDeps
    sessions: dict[str, CounterSession] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    slots: ConnectionSlots = field(default_factory=ConnectionSlots)
    failed_handshakes: FailedHandshakes = field(default_factory=FailedHandshakes)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def build(
        cls, settings: Settings, api_keys: ApiKeyRepository, pipeline: PipelineDeps, metrics: Metrics
    ) -> CounterHub:
        limits = settings.limits
        timing = pipeline.early_timing
        if timing is not None:
            metrics.early_start_ms.read = lambda: timing.start_ms
        voice = pipeline.voice_timing
        if voice is not None:
            metrics.voice_start_ms.read = lambda: voice.start_ms
        return cls(
            settings=settings,
            api_keys=api_keys,
            pipeline=pipeline,
            metrics=metrics,
            slots=ConnectionSlots(limits.max_connections, limits.max_connections_per_key),
            failed_handshakes=FailedHandshakes(limits.handshake_failures, limits.handshake_failures_window_s),
        )

    async def serve(self, socket: WebSocket) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._serve(socket)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _serve(self, socket: WebSocket) -> None:
        address = socket.client.host if socket.client else "?"
        await socket.accept()
        client = _Client(socket)
        try:
            if self.stopping.is_set():
                raise ProtocolError(CloseCode.GOING_AWAY, "servidor_encerrando", "o servidor está encerrando")
            if self.failed_handshakes.blocked(address, time.monotonic()):
                raise ProtocolError(
                    CloseCode.TOO_MANY_FAILED_HANDSHAKES,
                    "muitas_tentativas",
                    "handshakes inválidos demais deste endereço; tente mais tarde",
                )
            session, key_id = await self._open(socket, client)
        except ProtocolError as exc:
            if exc.close_code not in _NOT_THE_CLIENTS_FAULT:
                self.failed_handshakes.failed(address, time.monotonic())
            log.info("handshake refused (%s): %s", exc.codigo, exc.mensagem)
            with contextlib.suppress(Exception):
                await client.send(Erro(exc.codigo, exc.mensagem))
            await self._close(client, exc.close_code, exc.codigo)
            return
        except WebSocketDisconnect:
            return
        self.metrics.connections.inc()
        self.metrics.connections_open.inc()
        try:
            await self._stream(socket, client, session)
        finally:
            self.metrics.early_starts.inc(session.early_used, resultado="usado")
            self.metrics.early_starts.inc(session.early_started - session.early_used, resultado="descartado")
            self.metrics.connections_open.dec()
            self.slots.give_back(key_id)
            logcontext.bind(None, None)

    async def _close(self, client: _Client, code: int, reason: str) -> None:
        self.metrics.closes.inc(code=str(int(code)))
        if reason:
            self.metrics.errors.inc(codigo=reason)
        await client.close(code, reason)

    async def _open(self, socket: WebSocket, client: _Client) -> tuple[CounterSession, int]:
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
        if len(text) > _MAX_HANDSHAKE_CHARS:
            raise ProtocolError(
                CloseCode.FRAME_TOO_LARGE,
                "frame_muito_grande",
                f"handshake maior que {_MAX_HANDSHAKE_CHARS} caracteres",
            )
        handshake = parse_handshake(text)
        policy = effective_policy(self.settings.vad, handshake)
        fmt = audio_format(handshake)
        try:
            key = await asyncio.wait_for(self.api_keys.resolve(handshake.api_key), 5.0)
        except Exception as exc:  # the database is down: the key cannot be checked, the client may retry
            log.warning("cannot check an API key: %s: %s", type(exc).__name__, exc)
            raise ProtocolError(
                CloseCode.SERVER_FULL, "servico_indisponivel", "não foi possível verificar a api_key; tente mais tarde"
            ) from None
        if key is None:
            raise ProtocolError(CloseCode.API_KEY_INVALID, "api_key_invalida", "api_key desconhecida ou revogada")
        refusal = self.slots.take(key.id)
        if refusal is Refusal.SERVER_FULL:
            raise ProtocolError(
                CloseCode.SERVER_FULL,
                refusal.value,
                f"o servidor já tem {self.slots.max_total} conexões; tente mais tarde",
            )
        if refusal is Refusal.KEY_FULL:
            raise ProtocolError(
                CloseCode.KEY_CONNECTIONS_EXCEEDED,
                refusal.value,
                f"esta api_key já tem {self.slots.max_per_key} conexões abertas",
            )
        conexao_id = uuid.uuid4().hex[:12]
        logcontext.bind(conexao_id, key.balcao_id)
        try:
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
        except BaseException:
            self.slots.give_back(key.id)
            raise
        log.info("balcão %s connected as %s (key %s)", key.balcao_id, conexao_id, _safe(key))
        return session, key.id

    async def drain(self, grace_s: float) -> None:
        """Server shutdown: new handshakes are refused, every session is told (`encerrando`), finishes
        what it received within `grace_s`, stores its rows and closes with 1001; after that, the
        sessions still running are stopped."""
        self.stopping.set()
        handlers = list(self._handlers)
        if not handlers:
            return
        log.info("shutting down: %d connections finish their segments (up to %g s)", len(handlers), grace_s)
        _, pending = await asyncio.wait(handlers, timeout=grace_s)
        if pending:
            log.warning("%d connections still busy after %g s; stopping them", len(pending), grace_s)
            for session in list(self.sessions.values()):
                await session.aclose()

    async def _stream(self, socket: WebSocket, client: _Client, session: CounterSession) -> None:
        limits = self.settings.limits
        self.sessions[session.conexao_id] = session
        session.start()
        graceful, close_code, close_reason = False, int(CloseCode.NORMAL), ""
        started = time.monotonic()
        failure = asyncio.create_task(session.failed.wait())
        stopping = asyncio.create_task(self.stopping.wait())
        try:
            while True:
                receiving = asyncio.ensure_future(socket.receive())
                remaining = limits.max_session_s - (time.monotonic() - started) if limits.max_session_s else None
                await asyncio.wait(
                    (receiving, failure, stopping),
                    timeout=None if remaining is None else max(0.0, remaining),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not receiving.done():
                    receiving.cancel()
                    if failure.done():
                        raise session.error or DecodeError("audio_invalido", "áudio inválido")
                    if stopping.done():
                        with contextlib.suppress(Exception):
                            await client.send(Encerrando(prazo_s=limits.shutdown_grace_s))
                        graceful, close_code, close_reason = True, int(CloseCode.GOING_AWAY), "servidor_encerrando"
                        break
                    graceful, close_code, close_reason = True, int(CloseCode.SESSION_TOO_LONG), "sessao_longa_demais"
                    with contextlib.suppress(Exception):
                        await client.send(
                            Erro(close_reason, f"a conexão passou de {limits.max_session_s:g} s; reconecte")
                        )
                    break
                message = receiving.result()
                if message["type"] == "websocket.disconnect":
                    session.client_gone()
                    break
                data = message.get("bytes")
                text = message.get("text")
                size = len(data) if isinstance(data, bytes) else len(text) if isinstance(text, str) else 0
                if size > limits.max_frame_bytes:
                    raise _Refused(
                        CloseCode.FRAME_TOO_LARGE,
                        "frame_muito_grande",
                        f"frame de {size} bytes; o máximo é {limits.max_frame_bytes}",
                    )
                if isinstance(data, bytes):
                    await session.feed(data)
                    ahead = session.audio_s - (time.monotonic() - started)
                    if limits.max_audio_ahead_s and ahead > limits.max_audio_ahead_s:
                        raise _Refused(
                            CloseCode.AUDIO_TOO_FAST,
                            "audio_acima_do_tempo_real",
                            f"o áudio chegou {ahead:.0f} s à frente do tempo real "
                            f"(máximo {limits.max_audio_ahead_s:g} s)",
                        )
                    continue
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
                    self.metrics.errors.inc(codigo="comando_desconhecido")
                    await client.send(
                        Erro("comando_desconhecido", f"comando desconhecido: {command!r}; use ping, feedback ou fim")
                    )
        except WebSocketDisconnect:
            session.client_gone()
        except _Refused as exc:
            # A limit: say which, close, but keep what was already processed.
            with contextlib.suppress(Exception):
                await client.send(Erro(exc.codigo, exc.mensagem))
            await self._close(client, exc.close_code, exc.codigo)
            session.client_gone()
        except DecodeError as exc:
            # Undecodable audio: say why, close, but keep what was already processed.
            with contextlib.suppress(Exception):
                await client.send(Erro(exc.code, exc.message))
            await self._close(client, CloseCode.AUDIO_FORMAT_INVALID, exc.code)
            session.client_gone()
        except Exception:
            log.exception("connection %s failed", session.conexao_id)
            session.client_gone()
            await self._close(client, CloseCode.INTERNAL_ERROR, "erro_interno")
        finally:
            failure.cancel()
            stopping.cancel()
            try:
                await session.finish()
            finally:
                self.sessions.pop(session.conexao_id, None)
        if graceful and session.connected:
            error = session.error
            with contextlib.suppress(Exception):
                # The decoder may only find out at the end of the stream that it was not audio.
                await client.send(Erro(error.code, error.message) if error else Encerrado(interacoes=session.stored))
            if error:
                close_code, close_reason = int(CloseCode.AUDIO_FORMAT_INVALID), error.code
            await self._close(client, close_code, close_reason)
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


class _Refused(Exception):
    """A limit crossed after the handshake: an `erro` frame, then the close code."""

    def __init__(self, close_code: CloseCode, codigo: str, mensagem: str) -> None:
        super().__init__(mensagem)
        self.close_code = close_code
        self.codigo = codigo
        self.mensagem = mensagem


# Refusals that say nothing about the client's honesty: they do not count towards WS_HANDSHAKE_FAILURES_MAX.
_NOT_THE_CLIENTS_FAULT = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.SERVER_FULL,
        CloseCode.KEY_CONNECTIONS_EXCEEDED,
        CloseCode.TOO_MANY_FAILED_HANDSHAKES,
    }
)
_MAX_HANDSHAKE_CHARS = 64 * 1024


def _safe(key: ApiKey) -> str:
    return f"{key.prefix}… (id {key.id})"


def _emitter(client: _Client) -> Callable[[SessionEvent], Any]:
    async def emit(event: SessionEvent) -> None:
        if isinstance(event, TranscriptEvent):
            match = event.match
            prob = None if match is None else match.top_prob
            await client.send(
                Transcricao(
                    texto=event.text,
                    inicio=round(event.start_s, 3),
                    fim=round(event.end_s, 3),
                    interacao_id=event.interaction_uuid,
                    falante=event.speaker,
                    falante_id=None if match is None else match.top_id,
                    falante_nome=None if match is None else match.top_name,
                    falante_papel=None if match is None else match.top_role,
                    falante_prob=None if prob is None else round(prob, 4),
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
async def counter_socket(socket: WebSocket, hub: Hub) -> None:
    await hub.serve(socket)


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    """Alive: the process answers HTTP."""
    return {"status": "ok"}


ReadyCheck = NamedDependency[SkipValidation[Callable[[], Awaitable[dict[str, str]]]]]


@get("/ready")
async def ready(readiness: ReadyCheck) -> Response[dict[str, str]]:
    """Ready to serve: the models are loaded (start-up finished) and the database answers."""
    checks = await readiness()
    ok = all(value == "ok" for value in checks.values())
    return Response({"status": "ready" if ok else "not_ready", **checks}, status_code=200 if ok else 503)


@get("/metrics", media_type="text/plain; version=0.0.4; charset=utf-8", sync_to_thread=False)
def metrics_endpoint(metrics: NamedDependency[SkipValidation[Metrics]]) -> str:
    """Prometheus text format: connections, segments, STT/LLM latency, queue and journal, errors by code."""
    return metrics.render()


# -- admin: voice profiles -------------------------------------------------------------------------

ADMIN_KEY_HEADER = "X-Admin-Key"
ADMIN_SECURITY: list[dict[str, list[str]]] = [{"adminKey": []}]


def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """401 unless the request carries BALTO_ADMIN_KEY in X-Admin-Key (compared in constant time)."""
    expected: str = connection.app.state.admin_key
    given = connection.headers.get(ADMIN_KEY_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise NotAuthorizedException(detail=f"missing or wrong admin key (header {ADMIN_KEY_HEADER})")


@dataclass
class EnrollForm:
    """multipart/form-data: who the voice belongs to, and one or more recordings of it."""

    nome: str
    papel: str
    arquivos: list[UploadFile]
    balcao_id: str | None = None  # omitted: the voice is recognised at every balcão
    substituir: bool = False  # replace a profile with the same name at the same balcão


class Perfil(msgspec.Struct):
    id: str
    nome: str
    papel: str | None
    balcao_id: str | None
    amostras: int
    modelo: str
    criado_em: str | None


class PerfilCadastrado(msgspec.Struct):
    perfil: Perfil
    fala_s: float  # seconds of speech found in the recordings
    avisos: list[str]
    substituidos: list[str]  # ids of the profiles this one replaced


def _perfil(profile: SpeakerProfile) -> Perfil:
    created = profile.created_at
    return Perfil(
        id=str(profile.id),
        nome=profile.name,
        papel=profile.role,
        balcao_id=profile.balcao_id,
        amostras=profile.samples,
        modelo=profile.embedder,
        criado_em=None if created is None else datetime.fromtimestamp(created, UTC).isoformat(timespec="seconds"),
    )


def _decode_upload(name: str, content: bytes) -> np.ndarray:
    # ffmpeg reads some containers (MP4/M4A) only from a seekable file, so the upload goes to disk.
    with tempfile.TemporaryDirectory(prefix="balto-enroll-") as folder:
        path = Path(folder) / (Path(name).name or "audio")
        path.write_bytes(content)
        return decode_audio_file(path)


@post(
    "/admin/speakers",
    guards=[admin_guard],
    security=ADMIN_SECURITY,
    tags=["admin"],
    status_code=201,
    request_max_body_size=50 * 1024 * 1024,
    summary="Enroll a voice profile from uploaded recordings",
    description="Several recordings of the same speaker are averaged into one profile (10-20 s of speech "
    "recommended). WAV, Ogg/Opus, WebM, MP3, FLAC, M4A: anything ffmpeg reads. 422 when the audio is "
    "silent or too short, or the name is already enrolled at that balcão without `substituir`; 415 when a "
    "file is not audio; 503 when speaker identification is off (SPEAKER_ID=off).",
)
async def enroll_speaker(
    data: Annotated[EnrollForm, Body(media_type=RequestEncodingType.MULTI_PART)], enrollment: Enrolment
) -> PerfilCadastrado:
    if enrollment is None:
        raise HTTPException(status_code=503, detail="speaker identification is off (SPEAKER_ID=off)")
    uploads = data.arquivos if isinstance(data.arquivos, list) else [data.arquivos]
    recordings = []
    for index, upload in enumerate(uploads, 1):
        name = upload.filename or f"arquivo {index}"
        try:
            recordings.append((name, await asyncio.to_thread(_decode_upload, name, await upload.read())))
        except DecodeError as exc:
            raise HTTPException(status_code=415, detail=exc.message) from None
    try:
        result = await enrollment.enroll(data.nome, data.papel, data.balcao_id, recordings, replace=data.substituir)
    except EnrollmentError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return PerfilCadastrado(
        perfil=_perfil(result.profile),
        fala_s=round(result.speech_s, 1),
        avisos=list(result.warnings),
        substituidos=list(result.replaced),
    )


@get("/admin/speakers", guards=[admin_guard], security=ADMIN_SECURITY, tags=["admin"], summary="List voice profiles")
async def list_speakers(
    speaker_profiles: Profiles,
    balcao_id: Annotated[
        str | None, Parameter(description="Only the profiles usable at this balcão (its own and the global ones)")
    ] = None,
) -> list[Perfil]:
    return [_perfil(p) for p in await speaker_profiles.list(balcao_id)]


@delete(
    "/admin/speakers/{profile_id:str}",
    guards=[admin_guard],
    security=ADMIN_SECURITY,
    tags=["admin"],
    summary="Delete a voice profile",
)
async def delete_speaker(profile_id: FromPath[str], speaker_profiles: Profiles) -> None:
    if not await speaker_profiles.delete(profile_id):
        raise NotFoundException(detail=f"no voice profile with id {profile_id}")


async def _ping_database(engine: Any) -> None:
    import sqlalchemy as sa

    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


def create_app(
    settings: Settings | None = None,
    container: composition.Container | None = None,
    on_ready: Callable[[composition.Container], Any] | None = None,
) -> Litestar:
    """The real app. Tests pass a container whose providers they have overridden with fakes."""
    if container is None:
        container = composition.build_container(settings or Settings.from_env())
    settings = container.settings()
    metrics: Metrics = container.metrics()
    state: dict[str, Any] = {}

    async def startup() -> None:
        loop = asyncio.get_running_loop()
        slow_ms = container.settings().slow_callback_ms
        if slow_ms > 0:
            # Measuring, not serving: the loop's debug mode logs (logger "asyncio", WARNING) every
            # callback that holds the loop longer than this, which is how stages on the loop are checked.
            # uvloop's debug mode logs the same line as asyncio's.
            loop.set_debug(True)
            loop.slow_callback_duration = slow_ms / 1000
        await composition.start(container)
        state["hub"] = app.state.hub = CounterHub.build(
            container.settings(),
            await composition.resolve(container.api_keys),
            await composition.resolve(container.pipeline),
            metrics,
        )
        database = state["database"] = await composition.resolve(container.database)
        if database is not None:  # tests may run the app on in-memory repositories
            pool = database.engine.pool
            metrics.db_pool.read = lambda: float(pool.checkedin() + pool.checkedout())
        state["speaker_profiles"] = await composition.resolve(container.speaker_profiles)
        # The enrolment shares the identifier's embedder; with identification off, no model is loaded.
        state["enrollment"] = await composition.resolve(container.enrollment) if settings.speaker.enabled else None
        # Loading the models leaves ~430,000 objects that live as long as the process; a full garbage
        # collection walked them all in ~280 ms while holding the GIL, freezing the event loop once
        # every few minutes. Collected once here, then moved out of the collector's sight.
        gc.collect()
        gc.freeze()
        composition.single_thread_blas()
        # The watchdog (alone, or beside asyncio's debug mode, which slows the loop itself) starts
        # once the models are loaded: start-up is allowed to hold the loop.
        log.info("serving on %s's event loop (EVENT_LOOP=%s)", type(loop).__module__.split(".")[0], settings.event_loop)
        watch_ms = settings.loop_watchdog_ms or slow_ms
        if watch_ms > 0:
            state["loopwatch"] = LoopWatchdog(loop, watch_ms / 1000)
            state["loopwatch"].start()
        if on_ready is not None:
            result = on_ready(container)
            if asyncio.iscoroutine(result):
                await result

    async def shutdown() -> None:
        if "loopwatch" in state:
            state["loopwatch"].stop()
        hub = state.get("hub")
        if hub is not None:
            await hub.drain(settings.limits.shutdown_grace_s)  # at once when the server already drained
            for session in list(hub.sessions.values()):
                await session.aclose()
            # The queued interactions reach the database (or the journal) before its engine goes.
            aclose = getattr(hub.pipeline.interactions, "aclose", None)
            if aclose is not None:
                await aclose(settings.limits.shutdown_grace_s)
        await composition.stop(container)

    async def readiness() -> dict[str, str]:
        if "hub" not in state:
            return {"models": "loading", "database": "unknown"}
        checks = {"models": "ok", "database": "ok"}
        if state["database"] is None:
            return checks
        try:
            await asyncio.wait_for(_ping_database(state["database"].engine), 2.0)
        except Exception as exc:
            checks["database"] = f"{type(exc).__name__}: {exc}"[:200] or "unreachable"
        return checks

    def provide_hub() -> CounterHub:
        return state["hub"]

    def provide_enrollment() -> Enrollment | None:
        return state["enrollment"]

    def provide_speaker_profiles() -> SpeakerProfileRepository:
        return state["speaker_profiles"]

    from balto.app import console  # it reuses this module's admin guard, so it is imported here

    handlers: list[Any] = [counter_socket, health, ready, metrics_endpoint, *console.pages()]
    if settings.admin_key:
        handlers += [enroll_speaker, list_speakers, delete_speaker, *console.api()]
    else:
        log.warning("BALTO_ADMIN_KEY is unset: the admin endpoints (/admin/speakers) are disabled")
    app: Litestar = Litestar(
        route_handlers=handlers,
        on_startup=[startup],
        on_shutdown=[shutdown],
        dependencies={
            "hub": Provide(provide_hub, sync_to_thread=False),
            "metrics": Provide(lambda: metrics, sync_to_thread=False),
            "readiness": Provide(lambda: readiness, sync_to_thread=False),
            "enrollment": Provide(provide_enrollment, sync_to_thread=False),
            "speaker_profiles": Provide(provide_speaker_profiles, sync_to_thread=False),
        },
        openapi_config=OpenAPIConfig(
            title="Balto Server",
            version="0.1.0",
            description="Counter audio over /ws (docs/protocol.md); operator endpoints under /admin.",
            components=Components(
                security_schemes={
                    "adminKey": SecurityScheme(
                        type="apiKey",
                        name=ADMIN_KEY_HEADER,
                        security_scheme_in="header",
                        description="The server's BALTO_ADMIN_KEY.",
                    )
                }
            ),
        ),
        logging_config=None,  # the CLI configures logging (text or JSON lines)
    )
    app.state.admin_key = settings.admin_key or ""
    return app
