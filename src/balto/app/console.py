"""The browser pages (the counter client at /balcao, the operator's console at /console) and the
console's JSON endpoints: connected counters, recent interactions and stage latencies (docs/console.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.params import QueryParameter
from litestar.static_files import create_static_files_router

from balto.app.web import ADMIN_SECURITY, CounterHub, Hub, admin_guard
from balto.domain.interaction import Interaction
from balto.domain.latency import END_TO_END, SPEECH, STAGES, Stage, durations_ms, histogram, summarize

STATIC = Path(__file__).parent / "static"
TAGS = ["console"]
# The console reads a picture, not a report: a few hundred cycles are enough for percentiles.
MAX_LIMIT = 1000


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


# -- pages -------------------------------------------------------------------------------------------


def _page(name: str) -> Response[str]:
    # Read per request: a few kB, and an edited page shows without a restart.
    return Response(
        (STATIC / name).read_text(encoding="utf-8"),
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-cache"},
    )


@get("/balcao", include_in_schema=False, sync_to_thread=False)
def counter_page() -> Response[str]:
    return _page("balcao.html")


@get("/console", include_in_schema=False, sync_to_thread=False)
def console_page() -> Response[str]:
    return _page("console.html")


# -- JSON ----------------------------------------------------------------------------------------------


class VadAtual(msgspec.Struct):
    threshold_multiplier: float
    min_energy: float


class BalcaoConectado(msgspec.Struct):
    conexao_id: str
    balcao_id: str
    conectado_em: str | None
    conectado_ha_s: float | None
    interacoes: int  # rows stored for this connection so far
    transcricao: bool  # whether the client asked for transcript frames
    vad_settings: VadAtual


class InteracaoConsole(msgspec.Struct):
    id: int | None
    uuid: str
    balcao_id: str
    conexao_id: str
    conversa_id: str | None
    quando: str | None  # when its audio arrived (or, for a timer row, when the LLM was asked)
    transcricao: str | None
    inicio_s: float | None
    fim_s: float | None
    falante_papel: str | None
    falante_nome: str | None
    falante_prob: float | None
    stt_status: str | None
    stt_provider: str | None
    sugestoes_playbook: list[str]
    sugestoes_ia: list[str]
    recomendacao_gerada: str | None
    ia_status: str
    ia_provider: str | None
    buffer_acao: str | None
    latencias_ms: dict[str, float | None]


class EtapaResumo(msgspec.Struct):
    etapa: str
    rotulo: str
    n: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    media_ms: float | None


class Histograma(msgspec.Struct):
    etapa: str
    rotulo: str
    limites_ms: list[float]  # bucket i is [limites_ms[i], limites_ms[i+1]); the last also takes what is above
    contagens: list[int]


class Latencias(msgspec.Struct):
    interacoes: int  # rows read
    etapas: list[EtapaResumo]  # in the order a cycle runs through them
    ponta_a_ponta: list[EtapaResumo]  # from the end of speech to what the counter shows
    fala: EtapaResumo  # how long speech lasted until the VAD closed it (not a latency)
    histogramas: list[Histograma]  # the end-to-end distributions


def _connected(hub: CounterHub) -> list[BalcaoConectado]:
    now = hub.pipeline.clock.now()
    out = []
    for session in list(hub.sessions.values()):
        since = session.connected_at
        out.append(
            BalcaoConectado(
                conexao_id=session.conexao_id,
                balcao_id=session.balcao_id,
                conectado_em=_iso(since),
                conectado_ha_s=None if since is None else round(max(0.0, now - since), 1),
                interacoes=session.stored,
                transcricao=session.want_transcripts,
                vad_settings=VadAtual(session.policy.threshold_multiplier, session.policy.min_energy),
            )
        )
    return sorted(out, key=lambda b: (b.balcao_id, b.conexao_id))


def _row(interaction: Interaction) -> InteracaoConsole:
    match = interaction.speaker
    when = interaction.ts_audio_received or interaction.ts_segment_closed or interaction.ts_ai_req
    return InteracaoConsole(
        id=interaction.id,
        uuid=interaction.uuid,
        balcao_id=interaction.balcao_id,
        conexao_id=interaction.conexao_id,
        conversa_id=interaction.conversa_id,
        quando=_iso(when),
        transcricao=interaction.transcricao,
        inicio_s=interaction.segmento_inicio,
        fim_s=interaction.segmento_fim,
        falante_papel=None if match is None else match.top_role,
        falante_nome=None if match is None else match.top_name,
        falante_prob=None if match is None or match.top_prob is None else round(match.top_prob, 4),
        stt_status=None if interaction.stt_status is None else interaction.stt_status.value,
        stt_provider=interaction.stt_provider,
        sugestoes_playbook=[s.text for s in interaction.playbook_suggestions],
        sugestoes_ia=[s.text for s in interaction.suggestions],
        recomendacao_gerada=interaction.recomendacao_gerada,
        ia_status=interaction.ia_status.value,
        ia_provider=interaction.ia_provider,
        buffer_acao=interaction.buffer_acao,
        latencias_ms=durations_ms(interaction),
    )


def _summary(stage: Stage, rows: list[dict[str, float | None]]) -> EtapaResumo:
    s = summarize(row[stage.name] for row in rows)

    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return EtapaResumo(stage.name, stage.label, s.count, r(s.p50), r(s.p90), r(s.p99), r(s.max), r(s.mean))


def latency_report(interactions: list[Interaction]) -> Latencias:
    rows = [durations_ms(i) for i in interactions]
    histograms = []
    for stage in END_TO_END:
        h = histogram(row[stage.name] for row in rows)
        histograms.append(Histograma(stage.name, stage.label, list(h.edges), list(h.counts)))
    return Latencias(
        interacoes=len(interactions),
        etapas=[_summary(stage, rows) for stage in STAGES],
        ponta_a_ponta=[_summary(stage, rows) for stage in END_TO_END],
        fala=_summary(SPEECH, rows),
        histogramas=histograms,
    )


BalcaoFilter = Annotated[
    str | None, QueryParameter(description="Only this balcão's interactions (default: every balcão)")
]


@get(
    "/console/api/balcoes",
    guards=[admin_guard],
    security=ADMIN_SECURITY,
    tags=TAGS,
    sync_to_thread=False,
    summary="Counters connected now",
    description="Every open /ws connection of this server process: its balcão, since when, how many "
    "interaction rows it has stored so far, whether it asked for transcript frames, and its VAD settings.",
)
def connected_counters(hub: Hub) -> list[BalcaoConectado]:
    return _connected(hub)


@get(
    "/console/api/interacoes",
    guards=[admin_guard],
    security=ADMIN_SECURITY,
    tags=TAGS,
    summary="Latest interactions",
    description="The newest rows of `interacoes`, newest first: transcript, who spoke, the playbook's and "
    "the LLM's suggestions, `ia_status`, and the latency of each stage in ms from the `ts_*` columns "
    "(null where the stage did not run in that cycle).",
)
async def recent_interactions(
    hub: Hub,
    balcao_id: BalcaoFilter = None,
    limite: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="How many rows")] = 50,
) -> list[InteracaoConsole]:
    return [_row(i) for i in await hub.pipeline.interactions.list_recent(balcao_id, limite)]


@get(
    "/console/api/latencias",
    guards=[admin_guard],
    security=ADMIN_SECURITY,
    tags=TAGS,
    summary="Latency of each stage",
    description="Percentiles (p50, p90, p99, max, mean, in ms) of each stage of a cycle over the newest "
    "`limite` rows: queue, transcription, transcript frame, playbook card, LLM, LLM card; the end-to-end "
    "times from the end of speech to what the counter shows, and their histograms.",
)
async def stage_latencies(
    hub: Hub,
    balcao_id: BalcaoFilter = None,
    limite: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="How many of the newest rows")] = 200,
) -> Latencias:
    return latency_report(await hub.pipeline.interactions.list_recent(balcao_id, limite))


def pages() -> list[Any]:
    """Public: the pages hold no data; the console asks for the admin key and sends it with each request."""
    static = create_static_files_router(
        path="/static", directories=[STATIC], cache_control=CacheControlHeader(no_cache=True), name="console-static"
    )
    return [counter_page, console_page, static]


def api() -> list[Any]:
    """Behind the admin key, like /admin: registered only when BALTO_ADMIN_KEY is set (web.create_app logs
    when it is not; the console page then says the console is off)."""
    return [connected_counters, recent_interactions, stage_latencies]
