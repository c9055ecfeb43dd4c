"""The composition root: which adapter serves which port, chosen from settings and built once per process."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from balto.adapters import migrations
from balto.adapters.assemblyai import AssemblyAITranscriber, assemblyai_client
from balto.adapters.elevenlabs import DEFAULT_MODEL as ELEVENLABS_DEFAULT_MODEL
from balto.adapters.elevenlabs import ElevenLabsTranscriber, elevenlabs_client
from balto.adapters.embedded_postgres import EmbeddedPostgres, create_database_if_missing
from balto.adapters.faster_whisper import (
    AFTER_DECODES_ON_MKL,
    WhisperTranscriber,
    default_after_decodes,
    load_whisper_model,
    resolve_model_path,
)
from balto.adapters.ffmpeg import FfmpegDecoder, ffmpeg_exe
from balto.adapters.journal import FileJournal
from balto.adapters.noisereduce_cleaner import NoiseReduceCleaner
from balto.adapters.openai_llm import XAI_BASE_URL, OpenAICompatibleRecommender
from balto.adapters.openai_stt import DEFAULT_MODEL as OPENAI_STT_DEFAULT_MODEL
from balto.adapters.openai_stt import OpenAITranscriber
from balto.adapters.playbook import PlaybookRecommender, load_playbook
from balto.adapters.postgres import (
    PostgresApiKeyRepository,
    PostgresFeedbackRepository,
    PostgresInteractionRepository,
    PostgresSpeakerProfileRepository,
    create_engine,
)
from balto.adapters.system import SystemClock
from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.adapters.whisper_vocabulary import (
    RestrictedWhisper,
    VocabularyError,
    load_restricted_whisper,
    shipped_list,
)
from balto.app.decoding import AutoDecoder
from balto.app.durability import DurableInteractions
from balto.app.metrics import Metrics
from balto.app.recommenders import FallbackRecommender
from balto.app.routing import SmartRoutingTranscriber
from balto.app.session import PipelineDeps
from balto.app.settings import SPEAKER_EMBEDDERS, STT_PROVIDERS, LlmSettings, Settings
from balto.app.speakers import Enrollment, IdentificationConfig, SpeakerIdentification
from balto.app.threads import SPEAKER_NICE, compute_executor
from balto.domain.routing import CircuitBreaker, RoutingPolicy
from balto.domain.vad import EarlyStartTiming
from balto.ports.inference import LocalWorkers, Transcriber
from balto.ports.system import Clock

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from balto.adapters.silero_gate import SileroSpeechGate

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


async def _durable_interactions(
    settings: Settings, inner: PostgresInteractionRepository, metrics: Metrics
) -> AsyncIterator[DurableInteractions]:
    """The sessions' InteractionRepository: a write queue in front of the database, journalled to
    BALTO_DATA_DIR/journal while the database is unreachable (app/durability.py)."""
    storage = settings.storage
    durable = DurableInteractions(
        inner,
        FileJournal(settings.data_dir.resolve() / "journal" / "interacoes.jsonl"),
        queue_size=storage.queue_size,
        batch_size=storage.batch_size,
        write_timeout_s=storage.write_timeout_s,
        retry_initial_s=storage.retry_initial_s,
        retry_max_s=storage.retry_max_s,
        on_change=metrics.storage_changed,
        on_add=metrics.observe_interaction,
    )
    await durable.start()
    try:
        yield durable
    finally:
        await durable.aclose(settings.limits.shutdown_grace_s)


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
    # Loaded on a thread that yields to the event loop: CTranslate2's decode threads, which it starts
    # here, inherit that, and its name ("whisper_0" in `top -H`).
    loader = compute_executor(1, "whisper")
    try:
        model = await asyncio.get_running_loop().run_in_executor(
            loader,
            load_whisper_model,
            settings.stt_model,
            settings.model_cache_dir,
            settings.stt_compute_type,
            settings.stt_cpu_threads,
            settings.stt_workers,
        )
    finally:
        loader.shutdown(wait=False)
    yield model


async def _restricted_whisper(settings: Settings, model: Any) -> AsyncIterator[RestrictedWhisper | None]:
    """Whisper over the language's tokens (STT_VOCABULARY=auto, a language whose list ships, the
    default mode): its decoder's last product is over 24,542 tokens instead of 51,865. `model`, the
    whole one, is asked for only so that it is assembled first; the transcriber lets its weights go
    and loads them again only for a segment this one does not take (another language, over 30 s)."""
    language = settings.stt_language
    if settings.stt_vocabulary == "full" or settings.stt_pack or shipped_list(language) is None:
        yield None
        return
    assert language is not None
    model_dir = Path(resolve_model_path(settings.stt_model, settings.model_cache_dir))
    loader = compute_executor(1, "whisper")  # as the whole model: its threads yield to the loop
    try:
        restricted = await asyncio.get_running_loop().run_in_executor(
            loader,
            functools.partial(
                load_restricted_whisper,
                model_dir,
                settings.model_cache_dir,
                language,
                settings.stt_compute_type,
                settings.stt_cpu_threads,
                settings.stt_workers,
            ),
        )
    except (VocabularyError, OSError) as exc:  # a model of another vocabulary, a read-only cache
        log.warning("STT_VOCABULARY=auto: Whisper keeps its whole vocabulary (%s)", exc)
        restricted = None
    finally:
        loader.shutdown(wait=False)
    if restricted is not None:
        log.info("Whisper decodes %r over %d tokens (STT_VOCABULARY=auto)", language, restricted.vocabulary.size)
    yield restricted


def _early_start(transcriber: Transcriber, settings: Settings) -> Callable[[], bool] | None:
    """Segments are heard during the VAD's hang-over only by a transcriber on this machine's own
    workers (a vendor would bill every guess that speech interrupts), and only while more workers are
    free than STT_EARLY_RESERVE keeps for segments that close meanwhile."""
    if not settings.segmenter.early_ms or not isinstance(transcriber, LocalWorkers):
        return None
    reserve = min(settings.stt_early_reserve, transcriber.workers - 1)
    return lambda: transcriber.idle_workers() > reserve


# The voice is started this many of its measured medians before the close: a voice that ends after
# the close holds the transcript frame back, and starting it sooner only costs the voices of the few
# hearings that speech breaks in between (docs/performance.md, item 19).
VOICE_MEDIANS_BEFORE_CLOSE = 1.5


def _early_timing(settings: Settings, scale: float = 1.0) -> EarlyStartTiming | None:
    """One for the server: when in a pause every counter starts its early hearing (with `scale`
    VOICE_MEDIANS_BEFORE_CLOSE, when an early hearing works out the speaker's voice)."""
    segmenter = settings.segmenter
    if not segmenter.early_ms or not settings.early_start_measured:
        return None
    return EarlyStartTiming(hang_over_ms=segmenter.hang_over_ms, earliest_ms=segmenter.early_ms, scale=scale)


def _stt_executor(settings: Settings) -> Iterator[ThreadPoolExecutor]:
    executor = compute_executor(settings.stt_workers, "stt")
    try:
        yield executor
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def _batch_after_decodes(settings: Settings) -> float:
    if settings.stt_batch <= 1 or settings.stt_batch_after_ms is not None:
        return 1.0  # no batches, or a lag set in milliseconds
    decodes = default_after_decodes()
    mkl = (
        "on Intel MKL, where batches one decode behind lengthened the tail"
        if decodes == AFTER_DECODES_ON_MKL
        else "not on Intel MKL"
    )
    log.info("STT_BATCH_AFTER_MS auto: batches once the queue is %d decode(s) behind (CTranslate2 %s)", decodes, mkl)
    return float(decodes)


def _batch_after_s(settings: Settings) -> float | None:
    return None if settings.stt_batch_after_ms is None else settings.stt_batch_after_ms / 1000


async def _assemblyai_transcriber(settings: Settings) -> AsyncIterator[AssemblyAITranscriber]:
    stt = settings.stt
    assert stt.assemblyai.api_key is not None  # settings leave a keyless vendor out
    client = assemblyai_client(
        stt.assemblyai.api_key, stt.assemblyai.base_url, stt.vendor_timeout_s, stt.assemblyai_poll_interval_s
    )
    models = tuple(m.strip() for m in (stt.assemblyai.model or "").split(",") if m.strip())
    try:
        yield AssemblyAITranscriber(client, models, stt.vendor_timeout_s, settings.stt_language)
    finally:
        await client.aclose()


async def _elevenlabs_transcriber(settings: Settings) -> AsyncIterator[ElevenLabsTranscriber]:
    stt = settings.stt
    assert stt.elevenlabs.api_key is not None
    client, http = elevenlabs_client(stt.elevenlabs.api_key, stt.elevenlabs.base_url, stt.vendor_timeout_s)
    try:
        yield ElevenLabsTranscriber(
            client, stt.elevenlabs.model or ELEVENLABS_DEFAULT_MODEL, stt.vendor_timeout_s, settings.stt_language
        )
    finally:
        await http.aclose()


async def _openai_transcriber(settings: Settings) -> AsyncIterator[OpenAITranscriber]:
    import openai

    stt = settings.stt
    client = openai.AsyncOpenAI(
        api_key=stt.openai.api_key or "not-needed",  # a self-hosted Whisper server often needs none
        base_url=stt.openai.base_url,
        timeout=stt.vendor_timeout_s,
        max_retries=0,  # SMART_ROUTING moves on to the next provider instead
    )
    try:
        yield OpenAITranscriber(client, stt.openai.model or OPENAI_STT_DEFAULT_MODEL, settings.stt_language)
    finally:
        await client.close()


async def _transcriber(settings: Settings, candidates: Mapping[str, Any], clock: Clock) -> AsyncIterator[Transcriber]:
    """The transcriber every session uses: the one STT_PROVIDER, or SMART_ROUTING over several.

    `candidates` maps each provider name to the provider that builds it; only the providers the
    settings need are built (no Whisper model is loaded for a vendor-only routing).
    """
    stt = settings.stt
    if set(candidates) != set(STT_PROVIDERS):
        raise RuntimeError(f"the container maps {sorted(candidates)}, settings know {sorted(STT_PROVIDERS)}")
    if stt.left_out:
        log.warning(
            "SMART_ROUTING: left out %s; routing over %s",
            ", ".join(f"{name} ({why})" for name, why in stt.left_out),
            ", ".join(stt.providers),
        )
    built: dict[str, Transcriber] = {name: await resolve(candidates[name]) for name in stt.needed}
    if not stt.routing_enabled:
        (name,) = stt.providers
        log.info("transcription by %s (SMART_ROUTING off)", name)
        yield built[name]
        return
    policy = RoutingPolicy(stt.providers, stt.short_segment_s, stt.short_provider)
    log.info(
        "SMART_ROUTING over %s: %g s per provider, breaker after %d failures in %g s for %g s%s",
        " > ".join(stt.providers),
        stt.timeout_s,
        stt.breaker_failures,
        stt.breaker_window_s,
        stt.breaker_cooldown_s,
        f"; segments under {stt.short_segment_s:g} s go to {stt.short_provider} first" if stt.short_provider else "",
    )
    yield SmartRoutingTranscriber(
        built,
        policy,
        clock,
        timeout_s=stt.timeout_s,
        new_breaker=lambda: CircuitBreaker(stt.breaker_failures, stt.breaker_window_s, stt.breaker_cooldown_s),
    )


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


async def _silero_gate() -> AsyncIterator[Any]:
    from balto.adapters.silero_gate import load_silero_gate

    gate = await asyncio.to_thread(load_silero_gate, compute_executor(1, "speech-gate"))
    try:
        yield gate
    finally:
        gate.close()


def _speaker_executor() -> Iterator[ThreadPoolExecutor]:
    # One thread: an embedding takes tens of milliseconds, and the cores belong to Whisper.
    executor = compute_executor(1, "speaker", SPEAKER_NICE)
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


def _cleaner_for(mode: str, settings: Settings, cleaner: NoiseReduceCleaner | None) -> NoiseReduceCleaner | None:
    """The cleaner where AUDIO_CLEANER puts it: before both models ("on"), or for speaker ID only."""
    return cleaner if settings.audio_cleaner == mode else None


def _connection_speakers(identification: SpeakerIdentification | None) -> Any:
    return None if identification is None else identification.for_connection


def _speech_streams(gate: SileroSpeechGate | None) -> Any:
    """One Silero stream per connection for the segmenter's pauses, on the speech gate's model and
    thread; None when the gate is off (VAD_PAUSE_GATE_MS needs SPEECH_GATE=silero)."""
    return None if gate is None else gate.stream


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    metrics = providers.Singleton(Metrics)

    database = providers.Resource(_database, settings=settings)
    database_interactions = providers.Singleton(PostgresInteractionRepository, database.provided.engine)
    interactions = providers.Resource(_durable_interactions, settings, database_interactions, metrics)
    api_keys = providers.Singleton(PostgresApiKeyRepository, database.provided.engine)

    whisper_model = providers.Resource(_whisper_model, settings=settings)
    stt_executor = providers.Resource(_stt_executor, settings=settings)
    restricted_whisper = providers.Resource(_restricted_whisper, settings=settings, model=whisper_model)
    whisper_transcriber = providers.Singleton(
        WhisperTranscriber,
        model=whisper_model,
        restricted=restricted_whisper,
        executor=stt_executor,
        language=settings.provided.stt_language,
        beam_size=settings.provided.stt_beam_size,
        pack=settings.provided.stt_pack,
        batch=settings.provided.stt_batch,
        workers=settings.provided.stt_workers,
        window_s=settings.provided.stt_window_s,
        on_stopped=metrics.provided.stt_decodes_stopped.inc,
        on_batched=metrics.provided.whisper_batched,
        batch_after_s=providers.Callable(_batch_after_s, settings),
        batch_after_decodes=providers.Callable(_batch_after_decodes, settings),
        on_timed=metrics.provided.stt_decode_s.set,
    )
    assemblyai_transcriber = providers.Resource(_assemblyai_transcriber, settings=settings)
    elevenlabs_transcriber = providers.Resource(_elevenlabs_transcriber, settings=settings)
    openai_transcriber = providers.Resource(_openai_transcriber, settings=settings)
    # STT_PROVIDER / SMART_ROUTING_PROVIDERS name -> the provider that builds it; checked against the
    # settings' list at start-up.
    stt_providers = providers.Dict(
        whisper=whisper_transcriber.provider,
        assemblyai=assemblyai_transcriber.provider,
        elevenlabs=elevenlabs_transcriber.provider,
        openai=openai_transcriber.provider,
    )
    transcriber = providers.Resource(_transcriber, settings=settings, candidates=stt_providers, clock=clock)

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
        speaker=providers.Singleton(NoiseReduceCleaner),
        off=providers.Object(None),
    )

    speech_gate = providers.Selector(
        providers.Callable(lambda s: s.speech_gate, settings),
        silero=providers.Resource(_silero_gate),
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
            cleaner=providers.Callable(_cleaner_for, "speaker", settings, cleaner),
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
        cleaner=providers.Callable(_cleaner_for, "on", settings, cleaner),
        speech_gate=speech_gate,
        speech_gate_policy=settings.provided.speech_gate_policy,
        instant=instant_recommender,
        checklist=checklist,
        feedback=feedback,
        conversation_end_silence_s=settings.provided.conversation_end_silence_s,
        new_speaker_identifier=providers.Callable(_connection_speakers, speaker_identification),
        segmenter_config=settings.provided.segmenter,
        new_speech_stream=providers.Callable(_speech_streams, speech_gate),
        pause_gate_threshold=settings.provided.pause_gate_threshold,
        language=settings.provided.stt_language,
        early_start=providers.Callable(_early_start, transcriber, settings),
        early_timing=providers.Callable(_early_timing, settings),
        voice_timing=providers.Callable(_early_timing, settings, VOICE_MEDIANS_BEFORE_CLOSE),
    )


def build_container(settings: Settings) -> Container:
    # The settings enum and the selector's mapping must agree; a mismatch is a bug caught at start-up.
    missing = set(SPEAKER_EMBEDDERS) - set(Container.speaker_embedder.providers)
    if missing or settings.speaker.embedder not in Container.speaker_embedder.providers:
        raise RuntimeError(f"no speaker embedder factory for {sorted(missing) or settings.speaker.embedder}")
    container = Container(settings=settings)
    return container


def single_thread_blas() -> None:
    """numpy's OpenBLAS on one thread. Its matrix products (Whisper's mel filters, the speaker
    encoder's, the cleaner's) are small; with a thread per core, the helper thread then spun for each
    of them and took a third of the CPU a transcription costs (0.26 against 0.17 CPU-s per segment,
    docs/performance.md). The server's parallelism is its concurrent decodes, one core each.
    An explicit OPENBLAS_NUM_THREADS or OMP_NUM_THREADS is left as set."""
    if any(name in os.environ for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


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
        # imageio-ffmpeg checks its binary by running it (a blocking subprocess, ~25 ms) on the first
        # lookup; that happens here rather than when the first WebM connection spawns its decoder.
        await asyncio.to_thread(ffmpeg_exe)
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
