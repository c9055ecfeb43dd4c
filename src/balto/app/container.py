"""The composition root: which adapter serves which port, chosen from settings and built once per process."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from balto.adapters import migrations
from balto.adapters.embedded_postgres import EmbeddedPostgres, create_database_if_missing
from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model
from balto.adapters.ffmpeg import FfmpegDecoder
from balto.adapters.noisereduce_cleaner import NoiseReduceCleaner
from balto.adapters.openai_llm import XAI_BASE_URL, OpenAICompatibleRecommender
from balto.adapters.playbook import PlaybookRecommender, load_playbook
from balto.adapters.postgres import (
    PostgresApiKeyRepository,
    PostgresFeedbackRepository,
    PostgresInteractionRepository,
    create_engine,
)
from balto.adapters.system import SystemClock
from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.app.decoding import AutoDecoder
from balto.app.recommenders import FallbackRecommender
from balto.app.session import PipelineDeps
from balto.app.settings import LlmSettings, Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


@dataclass
class Database:
    engine: AsyncEngine
    url: str
    embedded: EmbeddedPostgres | None = None


async def _database(settings: Settings) -> AsyncIterator[Database]:
    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir.resolve() / "pgdata")
        await asyncio.to_thread(embedded.start)
        await embedded.ensure_database()
        url = embedded.url()
    else:
        await _ensure_external_database(url)
    engine = create_engine(url)
    try:
        if settings.auto_migrate:
            await migrations.upgrade(engine)
        yield Database(engine, url, embedded)
    finally:
        await engine.dispose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _ensure_external_database(url: str) -> None:
    """Create the configured database on first start when the user may; otherwise leave it to the DBA."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.database or parsed.database == "postgres":
        return
    admin = parsed.set(database="postgres", drivername="postgresql")
    try:
        await create_database_if_missing(admin.render_as_string(hide_password=False), parsed.database)
    except Exception as exc:  # no CREATEDB right, or no postgres db: the connect below says what is wrong
        log.debug("could not check/create database %s: %s", parsed.database, exc)


async def _whisper_model(settings: Settings) -> AsyncIterator[Any]:
    model = await asyncio.to_thread(
        load_whisper_model,
        settings.stt_model,
        settings.model_cache_dir,
        settings.stt_compute_type,
        settings.stt_cpu_threads,
        settings.stt_workers,
    )
    yield model


def _stt_executor(settings: Settings) -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(settings.stt_workers, thread_name_prefix="stt")
    try:
        yield executor
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


async def _openai_client(llm: LlmSettings) -> AsyncIterator[Any]:
    import openai

    base_url = llm.base_url or (XAI_BASE_URL if llm.provider == "grok" else None)
    client = openai.AsyncOpenAI(
        api_key=llm.api_key or "not-needed",  # self-hosted OpenAI-compatible servers often need none
        base_url=base_url,
        timeout=llm.timeout_s,
        max_retries=1,
    )
    log.info("recommendations from %s, model %s at %s", llm.provider, llm.effective_model, client.base_url)
    try:
        yield client
    finally:
        await client.close()


def _recommendations_off(settings: Settings) -> None:
    if settings.playbook_enabled:
        log.warning(
            "no LLM configured (set XAI_API_KEY or OPENAI_API_KEY): suggestions come from the playbook %s only",
            settings.playbook_file,
        )
    else:
        log.warning("no LLM configured (set XAI_API_KEY or OPENAI_API_KEY) and the playbook is off: no suggestions")


def _llm_mode(llm: LlmSettings) -> str:
    if llm.provider == "off":
        return "off"
    return "single" if llm.fallback is None else "with_fallback"


def _playbook_mode(settings: Settings) -> str:
    return "on" if settings.playbook_enabled else "off"


def _llm_recommender(client: Any, llm: LlmSettings) -> OpenAICompatibleRecommender:
    # Every provider is the one OpenAI-compatible adapter; they differ by client (base URL and key).
    return OpenAICompatibleRecommender(
        client,
        model=llm.effective_model,
        provider=llm.provider,
        temperature=llm.temperature,
        max_suggestions=llm.max_suggestions,
        system_prompt=llm.system_prompt,
        deadline_s=llm.timeout_s,
    )


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)

    database = providers.Resource(_database, settings=settings)
    interactions = providers.Singleton(PostgresInteractionRepository, database.provided.engine)
    api_keys = providers.Singleton(PostgresApiKeyRepository, database.provided.engine)

    whisper_model = providers.Resource(_whisper_model, settings=settings)
    stt_executor = providers.Resource(_stt_executor, settings=settings)
    transcriber = providers.Singleton(
        WhisperTranscriber,
        model=whisper_model,
        executor=stt_executor,
        language=settings.provided.stt_language,
        beam_size=settings.provided.stt_beam_size,
    )

    llm_settings = providers.Callable(lambda s: s.llm, settings)
    fallback_settings = providers.Callable(lambda s: s.llm.fallback, settings)
    openai_client = providers.Resource(_openai_client, llm_settings)
    fallback_client = providers.Resource(_openai_client, fallback_settings)
    _primary_llm = providers.Singleton(_llm_recommender, openai_client, llm_settings)
    _fallback_llm = providers.Singleton(_llm_recommender, fallback_client, fallback_settings)
    recommender = providers.Selector(
        providers.Callable(_llm_mode, llm_settings),
        off=providers.Callable(_recommendations_off, settings),
        single=_primary_llm,
        with_fallback=providers.Singleton(FallbackRecommender, _primary_llm, _fallback_llm),
    )

    # The playbook file is read once; a bad one stops the start-up (see `check`), naming the rule.
    playbook = providers.Singleton(load_playbook, settings.provided.playbook_file)
    instant_recommender = providers.Selector(
        providers.Callable(_playbook_mode, settings),
        on=providers.Singleton(PlaybookRecommender, playbook),
        off=providers.Object(None),
    )
    checklist = providers.Selector(
        providers.Callable(_playbook_mode, settings),
        on=playbook.provided.checklist,
        off=providers.Object(()),
    )
    feedback = providers.Singleton(PostgresFeedbackRepository, database.provided.engine)

    speech_detector = providers.Factory(WebRtcSpeechDetector, aggressiveness=settings.provided.vad_aggressiveness)
    container_decoder = providers.Factory(FfmpegDecoder)
    decoder = providers.Factory(AutoDecoder, container_decoder=container_decoder.provider)
    cleaner = providers.Selector(
        providers.Callable(lambda s: s.audio_cleaner, settings),
        on=providers.Singleton(NoiseReduceCleaner),
        off=providers.Object(None),
    )

    pipeline = providers.Singleton(
        PipelineDeps,
        transcriber=transcriber,
        interactions=interactions,
        clock=clock,
        new_detector=speech_detector.provider,
        new_decoder=decoder.provider,
        recommender=recommender,
        cleaner=cleaner,
        instant=instant_recommender,
        checklist=checklist,
        feedback=feedback,
        conversation_end_silence_s=settings.provided.conversation_end_silence_s,
        segmenter_config=settings.provided.segmenter,
        language=settings.provided.stt_language,
    )


def build_container(settings: Settings) -> Container:
    container = Container(settings=settings)
    return container


def check(container: Container) -> None:
    """Fail fast on configuration that only adapters can judge (the playbook file), before serving."""
    if container.settings().playbook_enabled:
        container.playbook()


async def resolve(provider: Any) -> Any:
    """Call a provider; providers that depend on async resources hand back an awaitable."""
    value = provider()
    return await value if inspect.isawaitable(value) else value


async def start(container: Container, *, need_models: bool = True) -> None:
    """Create the long-lived resources. The CLI's database-only commands skip the models."""
    await resolve(container.database)
    if need_models:
        await resolve(container.pipeline)


async def stop(container: Container) -> None:
    result = container.shutdown_resources()
    if inspect.isawaitable(result):
        await result
