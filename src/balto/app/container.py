"""The composition root: which adapter serves which port, chosen from settings and built once per process."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from balto.adapters import migrations
from balto.adapters.embedded_postgres import EmbeddedPostgres, create_database_if_missing
from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model
from balto.adapters.ffmpeg import FfmpegDecoder
from balto.adapters.noisereduce_cleaner import NoiseReduceCleaner
from balto.adapters.openai_llm import XAI_BASE_URL, OpenAICompatibleRecommender
from balto.adapters.postgres import (
    PostgresApiKeyRepository,
    PostgresInteractionRepository,
    PostgresSpeakerProfileRepository,
    create_engine,
)
from balto.adapters.system import SystemClock
from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.app.decoding import AutoDecoder
from balto.app.session import PipelineDeps
from balto.app.settings import SPEAKER_EMBEDDERS, LlmSettings, Settings
from balto.app.speakers import Enrollment, IdentificationConfig, SpeakerIdentification

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


async def _resemblyzer_embedder(settings: Settings) -> AsyncIterator[Any]:
    from balto.adapters.resemblyzer import load_resemblyzer

    weights = Path(settings.speaker.model) if settings.speaker.model else None
    yield await asyncio.to_thread(load_resemblyzer, weights, settings.speaker.cpu_threads)


async def _speechbrain_embedder(settings: Settings) -> AsyncIterator[Any]:
    try:
        from balto.adapters.speechbrain import DEFAULT_MODEL, load_speechbrain
    except Exception as exc:  # torchaudio raises OSError, not ImportError, when its build does not fit torch
        raise RuntimeError(f"SPEAKER_EMBEDDER=speechbrain, but speechbrain cannot be imported: {exc}") from exc
    source = settings.speaker.model or DEFAULT_MODEL
    yield await asyncio.to_thread(load_speechbrain, source, settings.model_cache_dir, settings.speaker.cpu_threads)


def _speaker_executor() -> Iterator[ThreadPoolExecutor]:
    # One thread: an embedding takes tens of milliseconds, and the cores belong to Whisper.
    executor = ThreadPoolExecutor(1, thread_name_prefix="speaker")
    try:
        yield executor
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def _identification_config(settings: Settings) -> IdentificationConfig:
    speaker = settings.speaker
    return IdentificationConfig(
        calibration=speaker.calibration,
        min_segment_s=speaker.min_segment_s,
        cluster_threshold=speaker.cluster_threshold,
        unknown_role=speaker.unknown_role,
    )


def _connection_speakers(identification: SpeakerIdentification | None) -> Any:
    return None if identification is None else identification.for_connection


def _recommendations_off() -> None:
    log.warning("no LLM configured (set XAI_API_KEY or OPENAI_API_KEY): recommendations are off")


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
    openai_client = providers.Resource(_openai_client, llm_settings)
    _openai_compatible = providers.Singleton(
        OpenAICompatibleRecommender,
        client=openai_client,
        model=llm_settings.provided.effective_model,
        provider=llm_settings.provided.provider,
        temperature=llm_settings.provided.temperature,
        max_suggestions=llm_settings.provided.max_suggestions,
    )
    recommender = providers.Selector(
        providers.Callable(lambda llm: llm.provider, llm_settings),
        grok=_openai_compatible,
        openai=_openai_compatible,
        openai_compatible=_openai_compatible,
        off=providers.Callable(_recommendations_off),
    )

    speech_detector = providers.Factory(WebRtcSpeechDetector, aggressiveness=settings.provided.vad_aggressiveness)
    container_decoder = providers.Factory(FfmpegDecoder)
    decoder = providers.Factory(AutoDecoder, container_decoder=container_decoder.provider)
    cleaner = providers.Selector(
        providers.Callable(lambda s: s.audio_cleaner, settings),
        on=providers.Singleton(NoiseReduceCleaner),
        off=providers.Object(None),
    )

    # Speaker identification (spec 2.3): the embedder is loaded once per process; each connection gets
    # its own identifier from `for_connection`, which remembers that connection's unknown voices.
    speaker_embedder = providers.Selector(
        providers.Callable(lambda s: s.speaker.embedder, settings),
        resemblyzer=providers.Resource(_resemblyzer_embedder, settings),
        speechbrain=providers.Resource(_speechbrain_embedder, settings),
    )
    speaker_profiles = providers.Singleton(PostgresSpeakerProfileRepository, database.provided.engine)
    speaker_executor = providers.Resource(_speaker_executor)
    speaker_identification = providers.Selector(
        providers.Callable(lambda s: "on" if s.speaker.enabled else "off", settings),
        on=providers.Singleton(
            SpeakerIdentification,
            embedder=speaker_embedder,
            profiles=speaker_profiles,
            executor=speaker_executor,
            config=providers.Callable(_identification_config, settings),
        ),
        off=providers.Object(None),
    )
    enrollment = providers.Singleton(
        Enrollment,
        embedder=speaker_embedder,
        profiles=speaker_profiles,
        new_detector=speech_detector.provider,
        min_rms=settings.provided.vad.min_energy,
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
        new_speaker_identifier=providers.Callable(_connection_speakers, speaker_identification),
        segmenter_config=settings.provided.segmenter,
        language=settings.provided.stt_language,
    )


def build_container(settings: Settings) -> Container:
    # The settings enum and the selector's mapping must agree; a mismatch is a bug caught at start-up.
    missing = set(SPEAKER_EMBEDDERS) - set(Container.speaker_embedder.providers)
    if missing or settings.speaker.embedder not in Container.speaker_embedder.providers:
        raise RuntimeError(f"no speaker embedder factory for {sorted(missing) or settings.speaker.embedder}")
    container = Container(settings=settings)
    return container


async def resolve(provider: Any) -> Any:
    """Call a provider; providers that depend on async resources hand back an awaitable."""
    value = provider()
    return await value if inspect.isawaitable(value) else value


async def start(container: Container, *, need_models: bool = True) -> None:
    """Create the long-lived resources. The CLI's database-only commands skip the models."""
    await resolve(container.database)
    if need_models:
        await resolve(container.pipeline)
        speaker = container.settings().speaker
        if speaker.enabled:
            log.info("speaker identification on (%s)", speaker.embedder)
        else:
            log.warning(
                "speaker identification off (SPEAKER_ID=off, or %s is not installed): speaker_data stays NULL",
                speaker.embedder,
            )


async def stop(container: Container) -> None:
    result = container.shutdown_resources()
    if inspect.isawaitable(result):
        await result
