"""Server settings, read from the environment once at start-up (never at import time)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

from balto.domain.speaker import Calibration, EnrollmentError, normalise_role
from balto.domain.vad import TAIL_MS, SegmenterConfig, SpeechGatePolicy, VadPolicy, VadSettingsError


class SettingsError(ValueError):
    """A setting has a value the server cannot run with; the message names the variable."""


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value is not None and value.strip() != "" else None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on", "sim"):
        return True
    if raw.lower() in ("0", "false", "no", "off", "nao", "não"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _batch_after_ms(env: Mapping[str, str]) -> float | None:
    raw = _get(env, "STT_BATCH_AFTER_MS")
    if raw is None or raw.lower() == "auto":
        return None
    value = _float(env, "STT_BATCH_AFTER_MS", 0.0)
    if value < 0:
        raise SettingsError(f"STT_BATCH_AFTER_MS must be auto or >= 0, got {raw!r}")
    return value


def _names(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = _get(env, name)
    if raw is None:
        return default
    return tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))


LLM_PROVIDERS = ("grok", "openai", "openai_compatible", "off")

# The speaker embedders the container knows, and the Python package each one needs.
SPEAKER_EMBEDDERS = {"resemblyzer": "resemblyzer", "speechbrain": "speechbrain"}
# Calibration defaults per embedder. Resemblyzer's were measured (docs/speaker-id.md); ECAPA's are
# SpeechBrain's own verification threshold (0.25), not measured here: re-measure before relying on them.
SPEAKER_DEFAULTS: dict[str, dict[str, float]] = {
    "resemblyzer": {"threshold": 0.685, "slope": 0.04, "temperature": 0.0126, "cluster": 0.64},
    "speechbrain": {"threshold": 0.25, "slope": 0.0, "temperature": 0.05, "cluster": 0.25},
}


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


@dataclass(frozen=True)
class SpeakerSettings:
    enabled: bool = False
    embedder: str = "resemblyzer"  # resemblyzer | speechbrain
    model: str | None = None  # resemblyzer: a weights .pt; speechbrain: a model dir or hub id
    calibration: Calibration = field(default_factory=Calibration)
    min_segment_s: float = 1.0
    cluster_threshold: float = 0.64
    unknown_role: str = "cliente"
    cpu_threads: int = 1


def default_playbook_file() -> Path:
    """The example pharmacy playbook shipped in the repository (src/balto/app/settings.py -> root)."""
    return Path(__file__).resolve().parents[3] / "playbooks" / "farmacia.yaml"


@dataclass(frozen=True)
class LlmSettings:
    provider: str = "off"  # grok | openai | openai_compatible | off
    api_key: str | None = None
    model: str | None = None
    base_url: str | None = None
    timeout_s: float = 10.0  # the whole call's budget, the SDK's one retry included
    temperature: float = 0.3
    max_suggestions: int = 3
    system_prompt: str | None = None  # None: the built-in pharmacy counter prompt
    fallback: LlmSettings | None = None  # tried when this provider errs or times out

    @property
    def effective_model(self) -> str:
        if self.model:
            return self.model
        return {"grok": "grok-3-mini", "openai": "gpt-4o-mini"}.get(self.provider, "default")


STT_PROVIDERS = ("whisper", "assemblyai", "elevenlabs", "openai")


@dataclass(frozen=True)
class VendorSettings:
    """How to reach one remote transcription vendor."""

    api_key: str | None = None
    base_url: str | None = None  # None: the vendor's own
    model: str | None = None  # None: the adapter's default


@dataclass(frozen=True)
class SttSettings:
    """Which transcriber serves the segments: one fixed provider, or SMART_ROUTING over several.

    `providers` is the effective order, already without the providers left out for want of a key;
    `left_out` says which were and why (logged once at start-up).
    """

    routing_enabled: bool = False
    providers: tuple[str, ...] = ("whisper",)
    left_out: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 4.0  # SMART_ROUTING: one provider's turn before the next is tried
    breaker_failures: int = 3
    breaker_window_s: float = 60.0
    breaker_cooldown_s: float = 30.0
    short_segment_s: float = 1.5
    short_provider: str | None = "whisper"
    vendor_timeout_s: float = 10.0  # every remote call's own deadline, routed or not
    assemblyai: VendorSettings = field(default_factory=VendorSettings)
    assemblyai_poll_interval_s: float = 0.5
    elevenlabs: VendorSettings = field(default_factory=VendorSettings)
    openai: VendorSettings = field(default_factory=VendorSettings)

    @property
    def needed(self) -> tuple[str, ...]:
        """Every provider to build: the routing order, plus the short-segment provider."""
        extra = (self.short_provider,) if self.routing_enabled and self.short_provider else ()
        return tuple(dict.fromkeys((*self.providers, *extra)))


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".balto")
    model_cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "balto" / "models")
    database_url: str | None = None  # None: start the embedded PostgreSQL in data_dir
    auto_migrate: bool = True
    vad: VadPolicy = field(default_factory=VadPolicy)
    vad_aggressiveness: int = 2
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    # off | speaker | on: what noise reduction serves (docs/audio-frontend.md): "speaker" cleans the
    # segment for speaker identification only (measured: +14 points top-1 in cafe noise), "on" also
    # for transcription (a wash on WER, 0.01 CPU-s per audio-s).
    audio_cleaner: str = "speaker"
    stt_model: str = "base"
    stt_language: str | None = "pt"
    stt_compute_type: str = "int8"
    # One thread per decode and one decode per core: CTranslate2's decoder spends most of a second
    # thread waiting on it (measured: beam-5 decoding 0.33 s on 2 threads against 0.10 s on one), so
    # two single-thread decodes at once serve twice as many segments (docs/performance.md).
    stt_cpu_threads: int = 1  # 0: every core
    stt_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    stt_early_reserve: int = 1  # workers an early start (VAD_EARLY_START_MS) leaves free (never all of them)
    # Start an offered segment at the hang-over minus the hearings' measured time (EarlyStartTiming),
    # not at the offer: fewer hearings thrown away when speech comes back (docs/performance.md).
    early_start_measured: bool = True
    stt_beam_size: int = 5  # beam 1 lost 1.8 WER points on noisy counter speech (docs/performance.md)
    stt_pack: bool = False  # pack segments that wait at once into one Whisper window (opt-in)
    # Segments of different counters that wait, decoded as one Whisper batch (at most this many; 1:
    # never), only once the queue is behind: k decodes behind, up to k + 1 (docs/performance.md).
    stt_batch: int = 4
    # What "a decode" is for that: None (auto) as long as a lone decode takes, measured, or three on
    # Intel MKL, where a batch costs more (docs/performance.md, item 17); 0: batch whenever several wait.
    stt_batch_after_ms: float | None = None
    stt_window_s: float = 10.0  # encoder window of a segment decoded alone (docs/performance.md)
    stt_vocabulary: str = "auto"  # auto: Whisper over the language's tokens where a list ships; full
    # silero | off: a speech model's second opinion on each VAD segment; segments with no speech are
    # stored (stt_provider "silero", stt_status "vazia") without being transcribed or identified.
    speech_gate: str = "silero"
    speech_gate_policy: SpeechGatePolicy = field(default_factory=SpeechGatePolicy)
    # A frame the VAD hears as speech after VAD_PAUSE_GATE_MS of silence ends the pause only if Silero,
    # streamed over the connection, gives it at least this probability (docs/performance.md, item 25).
    pause_gate_threshold: float = 0.05
    slow_callback_ms: float = 0.0  # > 0: asyncio debug mode, logging every callback slower than this
    loop_watchdog_ms: float = 0.0  # > 0: log the loop thread's stack whenever the loop is stuck this long
    # asyncio | uvloop: the server's event loop. uvloop (libuv's, its sockets, pipes and child processes
    # in C; not a dependency) saved the loop thread 5-15% and the server nothing measurable, so asyncio's
    # own is the default, whatever is installed (docs/performance.md).
    event_loop: str = "asyncio"
    stt: SttSettings = field(default_factory=SttSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    playbook_enabled: bool = True
    playbook_file: Path = field(default_factory=default_playbook_file)
    conversation_end_silence_s: float = 60.0
    speaker: SpeakerSettings = field(default_factory=SpeakerSettings)
    admin_key: str | None = None  # BALTO_ADMIN_KEY; None: the /admin endpoints are off
    handshake_timeout_s: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"
    limits: LimitSettings = field(default_factory=lambda: LimitSettings())
    storage: StorageSettings = field(default_factory=lambda: StorageSettings())

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            vad = VadPolicy(
                threshold_multiplier=_float(env, "VAD_THRESHOLD_MULTIPLIER", 1.5),
                min_energy=_float(env, "VAD_MIN_ENERGY_THRESHOLD", 50.0),
            )
        except VadSettingsError as exc:
            raise SettingsError(f"VAD_THRESHOLD_MULTIPLIER / VAD_MIN_ENERGY_THRESHOLD: {exc}") from None
        aggressiveness = _int(env, "VAD_AGGRESSIVENESS", 2)
        if aggressiveness not in (0, 1, 2, 3):
            raise SettingsError(f"VAD_AGGRESSIVENESS must be 0, 1, 2 or 3, got {aggressiveness}")
        defaults = SegmenterConfig()
        segmenter = SegmenterConfig(
            pre_roll_ms=_int(env, "VAD_PRE_ROLL_MS", defaults.pre_roll_ms, 0),
            hang_over_ms=_int(env, "VAD_HANG_OVER_MS", defaults.hang_over_ms, 30),
            min_speech_ms=_int(env, "VAD_MIN_SPEECH_MS", defaults.min_speech_ms, 0),
            max_segment_ms=_int(env, "VAD_MAX_SEGMENT_MS", defaults.max_segment_ms, 1000),
            early_ms=_int(env, "VAD_EARLY_START_MS", defaults.early_ms, 0),
            pause_gate_ms=_int(env, "VAD_PAUSE_GATE_MS", defaults.pause_gate_ms, 0),
        )
        if segmenter.pause_gate_ms and segmenter.pause_gate_ms >= segmenter.hang_over_ms:
            raise SettingsError(
                f"VAD_PAUSE_GATE_MS must be 0 (off) or less than VAD_HANG_OVER_MS ({segmenter.hang_over_ms}), "
                f"got {segmenter.pause_gate_ms}"
            )
        pause_threshold = _float(env, "VAD_PAUSE_GATE_THRESHOLD", 0.05)
        if not 0.0 < pause_threshold < 1.0:
            raise SettingsError(f"VAD_PAUSE_GATE_THRESHOLD must be between 0 and 1, got {pause_threshold}")
        if segmenter.early_ms and not TAIL_MS <= segmenter.early_ms < segmenter.hang_over_ms:
            raise SettingsError(
                f"VAD_EARLY_START_MS must be 0 (off) or from {TAIL_MS} (the tail a segment keeps) to less than "
                f"VAD_HANG_OVER_MS ({segmenter.hang_over_ms}), got {segmenter.early_ms}"
            )
        cleaner = (_get(env, "AUDIO_CLEANER") or "speaker").lower()
        if cleaner not in ("on", "off", "speaker"):
            raise SettingsError(f"AUDIO_CLEANER must be off, speaker or on, got {cleaner!r}")
        language = _get(env, "STT_LANGUAGE") or "pt"
        gate = (_get(env, "SPEECH_GATE") or "silero").lower()
        if gate not in ("silero", "off"):
            raise SettingsError(f"SPEECH_GATE must be silero or off, got {gate!r}")
        threshold = _float(env, "SPEECH_GATE_THRESHOLD", SpeechGatePolicy.threshold)
        if not 0.0 < threshold < 1.0:
            raise SettingsError(f"SPEECH_GATE_THRESHOLD must be between 0 and 1, got {threshold}")
        gate_min_ms = _float(env, "SPEECH_GATE_MIN_MS", SpeechGatePolicy.min_speech_ms)
        if gate_min_ms < 0:
            raise SettingsError(f"SPEECH_GATE_MIN_MS must be 0 or more, got {gate_min_ms}")
        gate_policy = SpeechGatePolicy(threshold, gate_min_ms)
        data_dir = Path(_get(env, "BALTO_DATA_DIR") or ".balto")
        cache = _get(env, "BALTO_MODEL_CACHE")
        return cls(
            host=_get(env, "HOST") or "127.0.0.1",
            port=_int(env, "PORT", 8000, 0),
            data_dir=data_dir,
            model_cache_dir=Path(cache) if cache else Path.home() / ".cache" / "balto" / "models",
            database_url=database_url_from_env(env),
            auto_migrate=_bool(env, "BALTO_AUTO_MIGRATE", True),
            vad=vad,
            vad_aggressiveness=aggressiveness,
            segmenter=segmenter,
            audio_cleaner=cleaner,
            stt_model=_get(env, "STT_MODEL") or "base",
            stt_language=None if language == "auto" else language,
            stt_compute_type=_get(env, "STT_COMPUTE_TYPE") or "int8",
            stt_cpu_threads=_int(env, "STT_CPU_THREADS", 1, 0),
            stt_workers=_int(env, "STT_WORKERS", os.cpu_count() or 1, 1),
            stt_early_reserve=_int(env, "STT_EARLY_RESERVE", 1, 0),
            early_start_measured=_bool(env, "VAD_EARLY_START_MEASURED", True),
            stt_beam_size=_int(env, "STT_BEAM_SIZE", 5, 1),
            stt_pack=_bool(env, "STT_PACK", False),
            stt_batch=_int(env, "STT_BATCH", 4, 1),
            stt_batch_after_ms=_batch_after_ms(env),
            stt_window_s=_window_s(env),
            stt_vocabulary=_vocabulary(env),
            speech_gate=gate,
            speech_gate_policy=gate_policy,
            pause_gate_threshold=pause_threshold,
            slow_callback_ms=_float(env, "ASYNCIO_SLOW_CALLBACK_MS", 0.0),
            loop_watchdog_ms=_float(env, "LOOP_WATCHDOG_MS", 0.0),
            event_loop=_event_loop(env),
            stt=stt_settings_from_env(env),
            llm=llm_settings_from_env(env),
            playbook_enabled=_bool(env, "PLAYBOOK_ENABLED", True),
            playbook_file=Path(playbook) if (playbook := _get(env, "PLAYBOOK_FILE")) else default_playbook_file(),
            conversation_end_silence_s=_positive(env, "CONVERSATION_END_SILENCE_S", 60.0),
            speaker=speaker_settings_from_env(env),
            admin_key=_get(env, "BALTO_ADMIN_KEY"),
            handshake_timeout_s=_float(env, "HANDSHAKE_TIMEOUT_S", 10.0),
            log_level=(_get(env, "LOG_LEVEL") or "INFO").upper(),
            log_format=_get(env, "LOG_FORMAT") or "text",
            limits=limit_settings_from_env(env),
            storage=storage_settings_from_env(env),
        )


def _window_s(env: Mapping[str, str]) -> float:
    value = _float(env, "STT_WINDOW_S", 10.0)
    if not 5.0 <= value <= 30.0:
        raise SettingsError(f"STT_WINDOW_S must be between 5 and 30 seconds (Whisper's window), got {value}")
    return value


def _event_loop(env: Mapping[str, str]) -> str:
    value = (_get(env, "EVENT_LOOP") or "asyncio").lower()
    if value not in ("asyncio", "uvloop"):
        raise SettingsError(f"EVENT_LOOP must be asyncio or uvloop, got {value!r}")
    if value == "uvloop" and not installed("uvloop"):
        raise SettingsError("EVENT_LOOP=uvloop, but uvloop is not installed (pip install uvloop)")
    return value


def _vocabulary(env: Mapping[str, str]) -> str:
    value = (_get(env, "STT_VOCABULARY") or "auto").lower()
    if value not in ("auto", "full"):
        raise SettingsError(f"STT_VOCABULARY must be auto or full, got {value!r}")
    return value


def database_url_from_env(env: Mapping[str, str]) -> str | None:
    """DATABASE_URL wins; else POSTGRES_HOST (with POSTGRES_PORT/USER/PASSWORD/DB); else None (embedded)."""
    url = _get(env, "DATABASE_URL")
    if url:
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        if not url.startswith("postgresql+asyncpg://"):
            raise SettingsError("DATABASE_URL must be a postgresql:// URL")
        return url
    host = _get(env, "POSTGRES_HOST")
    if host is None:
        return None
    user = quote(_get(env, "POSTGRES_USER") or "postgres", safe="")
    password = _get(env, "POSTGRES_PASSWORD")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    port = _int(env, "POSTGRES_PORT", 5432, 1)
    database = _get(env, "POSTGRES_DB") or "balto"
    return f"postgresql+asyncpg://{auth}@{host}:{port}/{database}"


def llm_settings_from_env(env: Mapping[str, str]) -> LlmSettings:
    provider = (_get(env, "LLM_PROVIDER") or "").lower()
    xai_key, openai_key = _get(env, "XAI_API_KEY"), _get(env, "OPENAI_API_KEY")
    if not provider:
        # Unset: use whichever provider has a key; none means recommendations are off.
        provider = "grok" if xai_key else "openai" if openai_key else "off"
    if provider not in LLM_PROVIDERS:
        raise SettingsError(f"LLM_PROVIDER must be one of {', '.join(LLM_PROVIDERS)}, got {provider!r}")
    key = {"grok": xai_key, "openai": openai_key}.get(provider) or _get(env, "LLM_API_KEY") or openai_key
    base_url = _get(env, "LLM_BASE_URL")
    if provider == "openai_compatible" and not base_url:
        raise SettingsError("LLM_PROVIDER=openai_compatible needs LLM_BASE_URL")
    if provider in ("grok", "openai") and not key:
        wanted = "XAI_API_KEY" if provider == "grok" else "OPENAI_API_KEY"
        raise SettingsError(f"LLM_PROVIDER={provider} needs {wanted} (unset LLM_PROVIDER to run without an LLM)")
    primary = LlmSettings(
        provider=provider,
        api_key=key,
        model=_get(env, "LLM_MODEL"),
        base_url=base_url,
        timeout_s=_positive(env, "LLM_TIMEOUT_S", 10.0),
        temperature=_float(env, "LLM_TEMPERATURE", 0.3),
        max_suggestions=_int(env, "LLM_MAX_SUGGESTIONS", 3, 1),
        system_prompt=_system_prompt(env),
    )
    return replace(primary, fallback=_fallback_from_env(env, primary, xai_key, openai_key))


def _system_prompt(env: Mapping[str, str]) -> str | None:
    name = _get(env, "LLM_SYSTEM_PROMPT_FILE")
    if name is None:
        return None
    try:
        prompt = Path(name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"LLM_SYSTEM_PROMPT_FILE: cannot read {name}: {exc}") from None
    if not prompt:
        raise SettingsError(f"LLM_SYSTEM_PROMPT_FILE: {name} is empty")
    return prompt


def _fallback_from_env(
    env: Mapping[str, str], primary: LlmSettings, xai_key: str | None, openai_key: str | None
) -> LlmSettings | None:
    """LLM_FALLBACK_*: a second provider for when the first errs or times out; same prompt and limits."""
    provider = (_get(env, "LLM_FALLBACK_PROVIDER") or "off").lower()
    if provider == "off":
        return None
    if provider not in LLM_PROVIDERS:
        raise SettingsError(f"LLM_FALLBACK_PROVIDER must be one of {', '.join(LLM_PROVIDERS)}, got {provider!r}")
    if primary.provider == "off":
        raise SettingsError("LLM_FALLBACK_PROVIDER needs a primary LLM (LLM_PROVIDER, XAI_API_KEY or OPENAI_API_KEY)")
    key = _get(env, "LLM_FALLBACK_API_KEY") or {"grok": xai_key, "openai": openai_key}.get(provider)
    base_url = _get(env, "LLM_FALLBACK_BASE_URL")
    if provider == "openai_compatible" and not base_url:
        raise SettingsError("LLM_FALLBACK_PROVIDER=openai_compatible needs LLM_FALLBACK_BASE_URL")
    if provider in ("grok", "openai") and not key:
        wanted = "XAI_API_KEY" if provider == "grok" else "OPENAI_API_KEY"
        raise SettingsError(f"LLM_FALLBACK_PROVIDER={provider} needs {wanted} or LLM_FALLBACK_API_KEY")
    return replace(primary, provider=provider, api_key=key, model=_get(env, "LLM_FALLBACK_MODEL"), base_url=base_url)


def _positive(env: Mapping[str, str], name: str, default: float, allow_zero: bool = False) -> float:
    value = _float(env, name, default)
    if value < 0 or (value == 0 and not allow_zero):
        raise SettingsError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value:g}")
    return value


def _provider_name(name: str, variable: str) -> str:
    if name not in STT_PROVIDERS:
        raise SettingsError(f"{variable}: unknown provider {name!r}; known: {', '.join(STT_PROVIDERS)}")
    return name


def stt_settings_from_env(env: Mapping[str, str]) -> SttSettings:
    """STT_PROVIDER / SMART_ROUTING_* and the vendors' keys and URLs; see README, "Transcription".

    A provider without what it needs to run (a key; for `openai`, a key or a base URL of a
    self-hosted server) is left out of the routing, and `left_out` says why. With routing off, the
    one provider named must be usable. Nothing usable at all is a SettingsError.
    """
    vendors = {
        "assemblyai": VendorSettings(
            api_key=_get(env, "ASSEMBLYAI_API_KEY"),
            base_url=_get(env, "ASSEMBLYAI_BASE_URL"),
            model=_get(env, "ASSEMBLYAI_SPEECH_MODELS"),
        ),
        "elevenlabs": VendorSettings(
            api_key=_get(env, "ELEVENLABS_API_KEY"),
            base_url=_get(env, "ELEVENLABS_BASE_URL"),
            model=_get(env, "ELEVENLABS_STT_MODEL"),
        ),
        "openai": VendorSettings(
            # The LLM's OPENAI_API_KEY serves here too, unless transcription has a key of its own.
            api_key=_get(env, "STT_OPENAI_API_KEY") or _get(env, "OPENAI_API_KEY"),
            base_url=_get(env, "STT_OPENAI_BASE_URL"),
            model=_get(env, "STT_OPENAI_MODEL"),
        ),
    }
    missing = {
        "assemblyai": None if vendors["assemblyai"].api_key else "no ASSEMBLYAI_API_KEY",
        "elevenlabs": None if vendors["elevenlabs"].api_key else "no ELEVENLABS_API_KEY",
        "openai": None
        if vendors["openai"].api_key or vendors["openai"].base_url
        else "no STT_OPENAI_API_KEY, OPENAI_API_KEY or STT_OPENAI_BASE_URL",
        "whisper": None,
    }
    enabled = _bool(env, "SMART_ROUTING_ENABLED", False)
    if enabled:
        wanted = _names(env, "SMART_ROUTING_PROVIDERS", ("elevenlabs", "assemblyai", "whisper"))
        if not wanted:
            raise SettingsError("SMART_ROUTING_PROVIDERS must name at least one provider")
        for name in wanted:
            _provider_name(name, "SMART_ROUTING_PROVIDERS")
        short_raw = _get(env, "SMART_ROUTING_SHORT_PROVIDER")
        short: str | None = "whisper" if short_raw is None else short_raw.lower()
        if short in ("none", "off", ""):
            short = None
        if short is not None:
            _provider_name(short, "SMART_ROUTING_SHORT_PROVIDER")
        short_segment_s = _positive(env, "SMART_ROUTING_SHORT_SEGMENT_S", 1.5, allow_zero=True)
        if short_segment_s == 0:
            short = None
        left_out = tuple(
            (name, why) for name in dict.fromkeys((*wanted, *([short] if short else []))) if (why := missing[name])
        )
        providers = tuple(name for name in wanted if not missing[name])
        if short is not None and missing[short]:
            short = None
        if not providers:
            reasons = "; ".join(f"{name}: {why}" for name, why in left_out)
            raise SettingsError(
                f"SMART_ROUTING_PROVIDERS={','.join(wanted)} leaves no usable transcription provider ({reasons}); "
                "add whisper to the list or set the vendors' keys"
            )
    else:
        name = _provider_name((_get(env, "STT_PROVIDER") or "whisper").lower(), "STT_PROVIDER")
        if missing[name]:
            raise SettingsError(f"STT_PROVIDER={name} cannot run: {missing[name]}")
        providers, left_out, short, short_segment_s = (name,), (), None, 0.0
    return SttSettings(
        routing_enabled=enabled,
        providers=providers,
        left_out=left_out,
        timeout_s=_positive(env, "SMART_ROUTING_TIMEOUT_S", 4.0),
        breaker_failures=_int(env, "SMART_ROUTING_BREAKER_FAILURES", 3, 1),
        breaker_window_s=_positive(env, "SMART_ROUTING_BREAKER_WINDOW_S", 60.0),
        breaker_cooldown_s=_positive(env, "SMART_ROUTING_BREAKER_COOLDOWN_S", 30.0),
        short_segment_s=short_segment_s,
        short_provider=short,
        vendor_timeout_s=_positive(env, "STT_TIMEOUT_S", 10.0),
        assemblyai=vendors["assemblyai"],
        assemblyai_poll_interval_s=_positive(env, "ASSEMBLYAI_POLL_INTERVAL_S", 0.5),
        elevenlabs=vendors["elevenlabs"],
        openai=vendors["openai"],
    )


def speaker_settings_from_env(env: Mapping[str, str]) -> SpeakerSettings:
    embedder = (_get(env, "SPEAKER_EMBEDDER") or "resemblyzer").lower()
    if embedder not in SPEAKER_EMBEDDERS:
        raise SettingsError(f"SPEAKER_EMBEDDER must be one of {', '.join(SPEAKER_EMBEDDERS)}, got {embedder!r}")
    package = SPEAKER_EMBEDDERS[embedder]
    switch = (_get(env, "SPEAKER_ID") or "auto").lower()
    if switch not in ("on", "off", "auto"):
        raise SettingsError(f"SPEAKER_ID must be on or off, got {switch!r}")
    if switch == "on" and not installed(package):
        extra = " (pip install 'balto[speechbrain]')" if embedder == "speechbrain" else ""
        raise SettingsError(f"SPEAKER_ID=on with SPEAKER_EMBEDDER={embedder} needs the {package} package{extra}")
    defaults = SPEAKER_DEFAULTS[embedder]
    try:
        calibration = Calibration(
            threshold=_float(env, "SPEAKER_UNKNOWN_THRESHOLD", defaults["threshold"]),
            slope=_float(env, "SPEAKER_THRESHOLD_SLOPE", defaults["slope"]),
            temperature=_float(env, "SPEAKER_TEMPERATURE", defaults["temperature"]),
        )
    except ValueError as exc:
        raise SettingsError(
            f"SPEAKER_UNKNOWN_THRESHOLD / SPEAKER_THRESHOLD_SLOPE / SPEAKER_TEMPERATURE: {exc}"
        ) from None
    cluster = _float(env, "SPEAKER_CLUSTER_THRESHOLD", defaults["cluster"])
    if not -1.0 <= cluster <= 1.0:
        raise SettingsError(f"SPEAKER_CLUSTER_THRESHOLD must be a cosine similarity in [-1, 1], got {cluster}")
    min_segment = _float(env, "SPEAKER_MIN_SEGMENT_S", 1.0)
    if not 0.1 <= min_segment <= 60:
        raise SettingsError(f"SPEAKER_MIN_SEGMENT_S must be between 0.1 and 60 seconds, got {min_segment}")
    try:
        role = normalise_role(_get(env, "SPEAKER_UNKNOWN_ROLE") or "cliente")
    except EnrollmentError as exc:
        raise SettingsError(f"SPEAKER_UNKNOWN_ROLE: {exc}") from None
    return SpeakerSettings(
        # Unset: on when the embedder's package is installed (it is a default dependency).
        enabled=switch == "on" or (switch == "auto" and installed(package)),
        embedder=embedder,
        model=_get(env, "SPEAKER_MODEL"),
        calibration=calibration,
        min_segment_s=min_segment,
        cluster_threshold=cluster,
        unknown_role=role,
        cpu_threads=_int(env, "SPEAKER_CPU_THREADS", 1, 0),
    )


@dataclass(frozen=True)
class LimitSettings:
    """What one counter connection may do (docs/protocol.md, "Limits"); 0 turns a limit off."""

    max_frame_bytes: int = 1024 * 1024  # WS_MAX_FRAME_BYTES: one WebSocket message
    max_audio_ahead_s: float = 300.0  # WS_MAX_AUDIO_AHEAD_S: audio received beyond real time
    max_session_s: float = 12 * 3600.0  # WS_MAX_SESSION_S: one connection's length
    max_connections: int = 200  # WS_MAX_CONNECTIONS: in total
    max_connections_per_key: int = 4  # WS_MAX_CONNECTIONS_PER_KEY
    handshake_failures: int = 20  # WS_HANDSHAKE_FAILURES_MAX failed handshakes per address ...
    handshake_failures_window_s: float = 60.0  # ... in WS_HANDSHAKE_FAILURES_WINDOW_S
    ping_interval_s: float = 20.0  # WS_PING_INTERVAL_S: the server pings; 0: never
    ping_timeout_s: float = 20.0  # WS_PING_TIMEOUT_S: no pong by then closes the connection (1011)
    shutdown_grace_s: float = 20.0  # SHUTDOWN_GRACE_S: SIGTERM waits this long for segments in flight


@dataclass(frozen=True)
class StorageSettings:
    """The interaction write queue and its journal (README, "Durability")."""

    queue_size: int = 1000  # STORAGE_QUEUE_SIZE
    batch_size: int = 50  # STORAGE_BATCH_SIZE
    write_timeout_s: float = 5.0  # STORAGE_WRITE_TIMEOUT_S: a write slower than this is journalled
    retry_initial_s: float = 0.5  # STORAGE_RETRY_INITIAL_S: first back-off while the database is down
    retry_max_s: float = 10.0  # STORAGE_RETRY_MAX_S: longest back-off


def limit_settings_from_env(env: Mapping[str, str]) -> LimitSettings:
    return LimitSettings(
        max_frame_bytes=_int(env, "WS_MAX_FRAME_BYTES", 1024 * 1024, 1024),
        max_audio_ahead_s=_positive(env, "WS_MAX_AUDIO_AHEAD_S", 300.0, allow_zero=True),
        max_session_s=_positive(env, "WS_MAX_SESSION_S", 12 * 3600.0, allow_zero=True),
        max_connections=_int(env, "WS_MAX_CONNECTIONS", 200, 0),
        max_connections_per_key=_int(env, "WS_MAX_CONNECTIONS_PER_KEY", 4, 0),
        handshake_failures=_int(env, "WS_HANDSHAKE_FAILURES_MAX", 20, 0),
        handshake_failures_window_s=_positive(env, "WS_HANDSHAKE_FAILURES_WINDOW_S", 60.0),
        ping_interval_s=_positive(env, "WS_PING_INTERVAL_S", 20.0, allow_zero=True),
        ping_timeout_s=_positive(env, "WS_PING_TIMEOUT_S", 20.0),
        shutdown_grace_s=_positive(env, "SHUTDOWN_GRACE_S", 20.0, allow_zero=True),
    )


def storage_settings_from_env(env: Mapping[str, str]) -> StorageSettings:
    return StorageSettings(
        queue_size=_int(env, "STORAGE_QUEUE_SIZE", 1000, 1),
        batch_size=_int(env, "STORAGE_BATCH_SIZE", 50, 1),
        write_timeout_s=_positive(env, "STORAGE_WRITE_TIMEOUT_S", 5.0),
        retry_initial_s=_positive(env, "STORAGE_RETRY_INITIAL_S", 0.5),
        retry_max_s=_positive(env, "STORAGE_RETRY_MAX_S", 10.0),
    )
