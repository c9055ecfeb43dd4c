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


def test_playbook_is_on_by_default_with_the_shipped_example():
    s = Settings.from_env({})
    assert s.playbook_enabled and s.playbook_file.name == "farmacia.yaml" and s.playbook_file.exists()
    assert s.conversation_end_silence_s == 60.0
    s = Settings.from_env(
        {"PLAYBOOK_ENABLED": "false", "PLAYBOOK_FILE": "/x/loja.json", "CONVERSATION_END_SILENCE_S": "90"}
    )
    assert not s.playbook_enabled and str(s.playbook_file) == "/x/loja.json" and s.conversation_end_silence_s == 90.0


@pytest.mark.parametrize(
    "env",
    [
        {"CONVERSATION_END_SILENCE_S": "0"},
        {"PLAYBOOK_ENABLED": "talvez"},
        {"LLM_TIMEOUT_S": "-1", "OPENAI_API_KEY": "o"},
        {"LLM_FALLBACK_PROVIDER": "grok", "XAI_API_KEY": ""},
        {"LLM_FALLBACK_PROVIDER": "openai", "XAI_API_KEY": "x"},
        {"LLM_FALLBACK_PROVIDER": "openai_compatible", "XAI_API_KEY": "x"},
        {"LLM_FALLBACK_PROVIDER": "gemini", "XAI_API_KEY": "x"},
        {"LLM_SYSTEM_PROMPT_FILE": "/nao/existe.txt"},
    ],
)
def test_bad_new_settings_fail_at_start_up_naming_the_variable(env):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert next(iter(env)) in str(info.value)


def test_fallback_provider_has_its_own_key_model_and_url_and_shares_the_rest():
    s = Settings.from_env(
        {
            "XAI_API_KEY": "x",
            "OPENAI_API_KEY": "o",
            "LLM_TIMEOUT_S": "4",
            "LLM_FALLBACK_PROVIDER": "openai",
            "LLM_FALLBACK_MODEL": "gpt-4.1-mini",
        }
    )
    assert s.llm.provider == "grok" and s.llm.api_key == "x"
    fallback = s.llm.fallback
    assert fallback is not None and fallback.fallback is None
    assert (fallback.provider, fallback.api_key, fallback.effective_model, fallback.timeout_s) == (
        "openai",
        "o",
        "gpt-4.1-mini",
        4.0,
    )
    local = Settings.from_env(
        {
            "OPENAI_API_KEY": "o",
            "LLM_FALLBACK_PROVIDER": "openai_compatible",
            "LLM_FALLBACK_BASE_URL": "http://127.0.0.1:11434/v1",
        }
    ).llm.fallback
    assert local is not None and local.base_url == "http://127.0.0.1:11434/v1" and local.api_key is None
    assert Settings.from_env({"OPENAI_API_KEY": "o"}).llm.fallback is None


def test_system_prompt_comes_from_a_file(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Você atende numa papelaria.\n", encoding="utf-8")
    s = Settings.from_env(
        {"OPENAI_API_KEY": "o", "LLM_SYSTEM_PROMPT_FILE": str(prompt), "LLM_FALLBACK_PROVIDER": "openai"}
    )
    assert s.llm.system_prompt == "Você atende numa papelaria."
    assert s.llm.fallback is not None and s.llm.fallback.system_prompt == s.llm.system_prompt
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(SettingsError, match="LLM_SYSTEM_PROMPT_FILE"):
        Settings.from_env({"LLM_SYSTEM_PROMPT_FILE": str(tmp_path / "empty.txt")})
