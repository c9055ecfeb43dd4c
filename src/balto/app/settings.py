"""Server settings, read from the environment once at start-up (never at import time)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from balto.domain.speaker import Calibration, EnrollmentError, normalise_role
from balto.domain.vad import SegmenterConfig, VadPolicy, VadSettingsError


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


@dataclass(frozen=True)
class LlmSettings:
    provider: str = "off"  # grok | openai | openai_compatible | off
    api_key: str | None = None
    model: str | None = None
    base_url: str | None = None
    timeout_s: float = 10.0
    temperature: float = 0.3
    max_suggestions: int = 3

    @property
    def effective_model(self) -> str:
        if self.model:
            return self.model
        return {"grok": "grok-3-mini", "openai": "gpt-4o-mini"}.get(self.provider, "default")


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
    audio_cleaner: str = "on"  # on | off
    stt_model: str = "base"
    stt_language: str | None = "pt"
    stt_compute_type: str = "int8"
    stt_cpu_threads: int = 0  # 0: every core
    stt_workers: int = 1
    stt_beam_size: int = 1
    llm: LlmSettings = field(default_factory=LlmSettings)
    speaker: SpeakerSettings = field(default_factory=SpeakerSettings)
    admin_key: str | None = None  # BALTO_ADMIN_KEY; None: the /admin endpoints are off
    handshake_timeout_s: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"

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
        )
        cleaner = (_get(env, "AUDIO_CLEANER") or "on").lower()
        if cleaner not in ("on", "off"):
            raise SettingsError(f"AUDIO_CLEANER must be on or off, got {cleaner!r}")
        language = _get(env, "STT_LANGUAGE") or "pt"
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
            stt_cpu_threads=_int(env, "STT_CPU_THREADS", 0, 0),
            stt_workers=_int(env, "STT_WORKERS", 1, 1),
            stt_beam_size=_int(env, "STT_BEAM_SIZE", 1, 1),
            llm=llm_settings_from_env(env),
            speaker=speaker_settings_from_env(env),
            admin_key=_get(env, "BALTO_ADMIN_KEY"),
            handshake_timeout_s=_float(env, "HANDSHAKE_TIMEOUT_S", 10.0),
            log_level=(_get(env, "LOG_LEVEL") or "INFO").upper(),
            log_format=_get(env, "LOG_FORMAT") or "text",
        )


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
    return LlmSettings(
        provider=provider,
        api_key=key,
        model=_get(env, "LLM_MODEL"),
        base_url=base_url,
        timeout_s=_float(env, "LLM_TIMEOUT_S", 10.0),
        temperature=_float(env, "LLM_TEMPERATURE", 0.3),
        max_suggestions=_int(env, "LLM_MAX_SUGGESTIONS", 3, 1),
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
