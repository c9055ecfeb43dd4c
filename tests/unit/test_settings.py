import pytest

from balto.app.settings import Settings, SettingsError


def test_defaults_run_offline_on_the_embedded_database():
    s = Settings.from_env({})
    assert s.database_url is None and s.embedded_postgres
    assert s.vad.threshold_multiplier == 1.5 and s.vad.min_energy == 50.0
    assert s.llm.provider == "off"
    assert s.stt_model == "base" and s.stt_language == "pt" and s.port == 8000


def test_vad_defaults_come_from_the_specs_variables():
    s = Settings.from_env({"VAD_THRESHOLD_MULTIPLIER": "2.5", "VAD_MIN_ENERGY_THRESHOLD": "120"})
    assert (s.vad.threshold_multiplier, s.vad.min_energy) == (2.5, 120.0)


@pytest.mark.parametrize(
    "env",
    [
        {"VAD_THRESHOLD_MULTIPLIER": "alto"},
        {"VAD_THRESHOLD_MULTIPLIER": "0.5"},
        {"VAD_MIN_ENERGY_THRESHOLD": "-3"},
        {"PORT": "http"},
        {"VAD_AGGRESSIVENESS": "7"},
        {"LLM_PROVIDER": "claude"},
        {"LLM_PROVIDER": "grok"},
        {"LLM_PROVIDER": "openai_compatible"},
        {"DATABASE_URL": "mysql://x"},
    ],
)
def test_bad_values_fail_at_start_up_naming_the_variable(env):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert next(iter(env)) in str(info.value) or "LLM_" in str(info.value) or "DATABASE_URL" in str(info.value)


def test_provider_follows_the_key_present():
    assert Settings.from_env({"XAI_API_KEY": "x"}).llm.provider == "grok"
    assert Settings.from_env({"OPENAI_API_KEY": "o"}).llm.provider == "openai"
    both = Settings.from_env({"XAI_API_KEY": "x", "OPENAI_API_KEY": "o", "LLM_PROVIDER": "openai"})
    assert both.llm.provider == "openai" and both.llm.api_key == "o"
    assert both.llm.effective_model == "gpt-4o-mini"
    grok = Settings.from_env({"XAI_API_KEY": "x", "LLM_MODEL": "grok-4"})
    assert grok.llm.effective_model == "grok-4"


def test_openai_compatible_server_needs_only_a_base_url():
    s = Settings.from_env({"LLM_PROVIDER": "openai_compatible", "LLM_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert s.llm.provider == "openai_compatible" and s.llm.api_key is None


def test_postgres_parts_make_an_asyncpg_url():
    s = Settings.from_env(
        {"POSTGRES_HOST": "db", "POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p@ss", "POSTGRES_DB": "balto"}
    )
    assert s.database_url == "postgresql+asyncpg://u:p%40ss@db:5432/balto"
    url = Settings.from_env({"DATABASE_URL": "postgres://a@b/c", "POSTGRES_HOST": "ignored"}).database_url
    assert url == "postgresql+asyncpg://a@b/c"


def test_speaker_identification_is_on_by_default_with_resemblyzers_measured_calibration():
    s = Settings.from_env({})
    assert s.speaker.enabled and s.speaker.embedder == "resemblyzer"  # resemblyzer is a dependency
    assert s.speaker.calibration.threshold == 0.685 and s.speaker.calibration.slope == 0.04
    assert s.speaker.unknown_role == "cliente" and s.speaker.min_segment_s == 1.0
    assert s.admin_key is None


def test_speaker_settings_from_the_environment():
    s = Settings.from_env(
        {
            "SPEAKER_ID": "off",
            "SPEAKER_UNKNOWN_THRESHOLD": "0.7",
            "SPEAKER_THRESHOLD_SLOPE": "0",
            "SPEAKER_TEMPERATURE": "0.02",
            "SPEAKER_CLUSTER_THRESHOLD": "0.6",
            "SPEAKER_MIN_SEGMENT_S": "1.5",
            "SPEAKER_UNKNOWN_ROLE": "Cliente",
            "SPEAKER_MODEL": "/models/encoder.pt",
            "BALTO_ADMIN_KEY": "s3cret",
        }
    )
    assert not s.speaker.enabled
    c = s.speaker.calibration
    assert (c.threshold, c.slope, c.temperature) == (0.7, 0.0, 0.02)
    assert s.speaker.cluster_threshold == 0.6 and s.speaker.min_segment_s == 1.5
    assert s.speaker.unknown_role == "cliente" and s.speaker.model == "/models/encoder.pt"
    assert s.admin_key == "s3cret"


def test_speechbrain_gets_its_own_calibration_defaults():
    s = Settings.from_env({"SPEAKER_EMBEDDER": "speechbrain", "SPEAKER_ID": "off"})
    assert s.speaker.embedder == "speechbrain" and s.speaker.calibration.threshold == 0.25


@pytest.mark.parametrize(
    "env",
    [
        {"SPEAKER_ID": "maybe"},
        {"SPEAKER_EMBEDDER": "pyannote"},
        {"SPEAKER_UNKNOWN_THRESHOLD": "2"},
        {"SPEAKER_TEMPERATURE": "0"},
        {"SPEAKER_CLUSTER_THRESHOLD": "-3"},
        {"SPEAKER_MIN_SEGMENT_S": "0"},
        {"SPEAKER_UNKNOWN_ROLE": "o cliente"},
    ],
)
def test_bad_speaker_values_fail_at_start_up(env):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert next(iter(env)).split("_")[0] in str(info.value)


def test_asking_for_an_embedder_that_is_not_installed_fails_at_start_up(monkeypatch):
    from balto.app import settings

    monkeypatch.setattr(settings, "installed", lambda package: package != "speechbrain")
    with pytest.raises(SettingsError, match=r"balto\[speechbrain\]"):
        Settings.from_env({"SPEAKER_EMBEDDER": "speechbrain", "SPEAKER_ID": "on"})
    # Unset, it is simply off.
    assert not Settings.from_env({"SPEAKER_EMBEDDER": "speechbrain"}).speaker.enabled
