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
        {"CONVERSATION_END_SILENCE_S": "0"},
        {"PLAYBOOK_ENABLED": "talvez"},
        {"LLM_TIMEOUT_S": "-1", "OPENAI_API_KEY": "o"},
        {"LLM_FALLBACK_PROVIDER": "grok", "XAI_API_KEY": ""},
        {"LLM_FALLBACK_PROVIDER": "openai", "XAI_API_KEY": "x"},
        {"LLM_FALLBACK_PROVIDER": "openai_compatible", "XAI_API_KEY": "x"},
        {"LLM_FALLBACK_PROVIDER": "gemini", "XAI_API_KEY": "x"},
        {"LLM_SYSTEM_PROMPT_FILE": "/nao/existe.txt"},
        {"STT_WINDOW_S": "4"},
        {"STT_WINDOW_S": "31"},
        {"STT_WINDOW_S": "vinte"},
        {"STT_BATCH": "0"},
        {"STT_BATCH": "quatro"},
        {"STT_BATCH_AFTER_MS": "-5"},
        {"STT_BATCH_AFTER_MS": "logo"},
        {"SPEECH_GATE": "webrtc"},
        {"SPEECH_GATE_THRESHOLD": "1.5"},
        {"SPEECH_GATE_MIN_MS": "-1"},
        {"STT_VOCABULARY": "pt"},
        {"EVENT_LOOP": "trio"},
        {"EVENT_LOOP": "auto"},
    ],
)
def test_bad_new_settings_fail_at_start_up_naming_the_variable(env):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert next(iter(env)) in str(info.value)


def test_the_speech_gate_is_silero_by_default_and_configurable():
    default = Settings.from_env({})
    assert default.speech_gate == "silero"
    assert (default.speech_gate_policy.threshold, default.speech_gate_policy.min_speech_ms) == (0.5, 32.0)
    custom = Settings.from_env({"SPEECH_GATE": "OFF", "SPEECH_GATE_THRESHOLD": "0.3", "SPEECH_GATE_MIN_MS": "96"})
    assert custom.speech_gate == "off"
    assert (custom.speech_gate_policy.threshold, custom.speech_gate_policy.min_speech_ms) == (0.3, 96.0)


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


# -- transcription: STT_PROVIDER and SMART_ROUTING_* ---------------------------------------------

KEYS = {"ASSEMBLYAI_API_KEY": "a", "ELEVENLABS_API_KEY": "e"}


def test_by_default_local_whisper_transcribes_alone():
    stt = Settings.from_env({}).stt
    assert not stt.routing_enabled and stt.providers == ("whisper",) and stt.needed == ("whisper",)
    assert stt.left_out == ()


def test_a_fixed_vendor_needs_its_key():
    stt = Settings.from_env({"STT_PROVIDER": "elevenlabs", **KEYS}).stt
    assert stt.providers == ("elevenlabs",) and stt.elevenlabs.api_key == "e"
    with pytest.raises(SettingsError, match="STT_PROVIDER=assemblyai cannot run: no ASSEMBLYAI_API_KEY"):
        Settings.from_env({"STT_PROVIDER": "assemblyai"})
    with pytest.raises(SettingsError, match="STT_PROVIDER: unknown provider 'deepgram'"):
        Settings.from_env({"STT_PROVIDER": "deepgram"})


def test_routing_keeps_the_order_and_leaves_out_providers_without_a_key():
    env = {"SMART_ROUTING_ENABLED": "true", "SMART_ROUTING_PROVIDERS": "ElevenLabs, assemblyai ,openai,whisper"}
    stt = Settings.from_env({**env, "ELEVENLABS_API_KEY": "e"}).stt
    assert stt.routing_enabled
    assert stt.providers == ("elevenlabs", "whisper")
    assert dict(stt.left_out) == {
        "assemblyai": "no ASSEMBLYAI_API_KEY",
        "openai": "no STT_OPENAI_API_KEY, OPENAI_API_KEY or STT_OPENAI_BASE_URL",
    }
    assert stt.short_provider == "whisper" and stt.short_segment_s == 1.5
    assert stt.needed == ("elevenlabs", "whisper")


def test_routing_defaults():
    stt = Settings.from_env({"SMART_ROUTING_ENABLED": "1", **KEYS}).stt
    assert stt.providers == ("elevenlabs", "assemblyai", "whisper")
    assert (stt.timeout_s, stt.breaker_failures, stt.breaker_window_s, stt.breaker_cooldown_s) == (4.0, 3, 60.0, 30.0)
    assert stt.vendor_timeout_s == 10.0 and stt.assemblyai_poll_interval_s == 0.5


def test_a_self_hosted_openai_compatible_server_needs_a_base_url_not_a_key():
    env = {"SMART_ROUTING_ENABLED": "true", "SMART_ROUTING_PROVIDERS": "openai"}
    stt = Settings.from_env({**env, "STT_OPENAI_BASE_URL": "http://gpu-box:8000/v1"}).stt
    assert stt.providers == ("openai",) and stt.openai.api_key is None
    shared = Settings.from_env({**env, "OPENAI_API_KEY": "sk-llm"}).stt
    assert shared.openai.api_key == "sk-llm"
    own = Settings.from_env({**env, "OPENAI_API_KEY": "sk-llm", "STT_OPENAI_API_KEY": "sk-stt"}).stt
    assert own.openai.api_key == "sk-stt"


def test_a_routing_that_leaves_no_provider_fails_at_start_up_saying_why():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SMART_ROUTING_ENABLED": "true", "SMART_ROUTING_PROVIDERS": "elevenlabs,assemblyai"})
    message = str(info.value)
    assert "leaves no usable transcription provider" in message
    assert "elevenlabs: no ELEVENLABS_API_KEY" in message and "assemblyai: no ASSEMBLYAI_API_KEY" in message


def test_the_short_segment_provider_can_be_another_or_none():
    base = {"SMART_ROUTING_ENABLED": "true", "SMART_ROUTING_PROVIDERS": "assemblyai", **KEYS}
    other = Settings.from_env({**base, "SMART_ROUTING_SHORT_PROVIDER": "elevenlabs"}).stt
    assert other.short_provider == "elevenlabs" and other.needed == ("assemblyai", "elevenlabs")
    assert Settings.from_env({**base, "SMART_ROUTING_SHORT_PROVIDER": "none"}).stt.short_provider is None
    assert Settings.from_env({**base, "SMART_ROUTING_SHORT_SEGMENT_S": "0"}).stt.short_provider is None
    keyless = Settings.from_env(
        {
            "SMART_ROUTING_ENABLED": "true",
            "SMART_ROUTING_PROVIDERS": "whisper",
            "SMART_ROUTING_SHORT_PROVIDER": "openai",
        }
    ).stt
    assert keyless.short_provider is None and dict(keyless.left_out)["openai"].startswith("no ")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SMART_ROUTING_PROVIDERS": "whisper,deepgram"}, "SMART_ROUTING_PROVIDERS"),
        ({"SMART_ROUTING_PROVIDERS": " , "}, "SMART_ROUTING_PROVIDERS"),
        ({"SMART_ROUTING_SHORT_PROVIDER": "google"}, "SMART_ROUTING_SHORT_PROVIDER"),
        ({"SMART_ROUTING_TIMEOUT_S": "0"}, "SMART_ROUTING_TIMEOUT_S"),
        ({"SMART_ROUTING_TIMEOUT_S": "rápido"}, "SMART_ROUTING_TIMEOUT_S"),
        ({"SMART_ROUTING_BREAKER_FAILURES": "0"}, "SMART_ROUTING_BREAKER_FAILURES"),
        ({"SMART_ROUTING_BREAKER_WINDOW_S": "-1"}, "SMART_ROUTING_BREAKER_WINDOW_S"),
        ({"SMART_ROUTING_BREAKER_COOLDOWN_S": "0"}, "SMART_ROUTING_BREAKER_COOLDOWN_S"),
        ({"SMART_ROUTING_SHORT_SEGMENT_S": "-0.5"}, "SMART_ROUTING_SHORT_SEGMENT_S"),
        ({"STT_TIMEOUT_S": "0"}, "STT_TIMEOUT_S"),
        ({"SMART_ROUTING_ENABLED": "talvez"}, "SMART_ROUTING_ENABLED"),
    ],
)
def test_bad_routing_values_fail_at_start_up_naming_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({"SMART_ROUTING_ENABLED": "true", **env})


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


def test_whisper_batches_up_to_four_once_the_queue_is_behind_by_default():
    assert Settings.from_env({}).stt_batch == 4
    assert Settings.from_env({"STT_BATCH": "1"}).stt_batch == 1
    # Behind by how many decodes: by default, measured (a lone decode's time).
    assert Settings.from_env({}).stt_batch_after_ms is None
    assert Settings.from_env({"STT_BATCH_AFTER_MS": "auto"}).stt_batch_after_ms is None
    assert Settings.from_env({"STT_BATCH_AFTER_MS": "0"}).stt_batch_after_ms == 0.0
    assert Settings.from_env({"STT_BATCH_AFTER_MS": "250"}).stt_batch_after_ms == 250.0


def test_the_loop_diagnostics_are_off_unless_asked_for():
    assert (Settings.from_env({}).loop_watchdog_ms, Settings.from_env({}).slow_callback_ms) == (0.0, 0.0)
    assert Settings.from_env({"LOOP_WATCHDOG_MS": "20"}).loop_watchdog_ms == 20.0


def test_one_single_thread_decode_per_core_and_an_early_start_by_default(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    s = Settings.from_env({})
    assert (s.stt_cpu_threads, s.stt_workers, s.stt_early_reserve) == (1, 4, 1)
    assert (s.segmenter.early_ms, s.segmenter.hang_over_ms) == (150, 450)
    assert Settings.from_env({"VAD_EARLY_START_MS": "0"}).segmenter.early_ms == 0
    assert Settings.from_env({"VAD_EARLY_START_MS": "300", "VAD_HANG_OVER_MS": "600"}).segmenter.early_ms == 300
    assert s.early_start_measured and not Settings.from_env({"VAD_EARLY_START_MEASURED": "false"}).early_start_measured


@pytest.mark.parametrize(
    "env",
    [
        {"VAD_EARLY_START_MS": "60"},  # under the 120 ms tail: the early audio would not be the segment's
        {"VAD_EARLY_START_MS": "450"},  # not before the hang-over closes the segment anyway
        {"VAD_EARLY_START_MS": "200", "VAD_HANG_OVER_MS": "150"},
        {"STT_EARLY_RESERVE": "-1"},
        {"VAD_PAUSE_GATE_MS": "450"},  # the hang-over would have closed the segment first
        {"VAD_PAUSE_GATE_MS": "-30"},
        {"VAD_PAUSE_GATE_THRESHOLD": "0"},
        {"VAD_PAUSE_GATE_THRESHOLD": "1"},
    ],
)
def test_bad_early_start_values_fail_at_start_up_naming_the_variable(env):
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_the_pause_gate_is_on_at_120_ms_by_default_and_configurable():
    default = Settings.from_env({})
    assert (default.segmenter.pause_gate_ms, default.pause_gate_threshold) == (120, 0.05)
    custom = Settings.from_env({"VAD_PAUSE_GATE_MS": "0", "VAD_PAUSE_GATE_THRESHOLD": "0.2"})
    assert (custom.segmenter.pause_gate_ms, custom.pause_gate_threshold) == (0, 0.2)


def test_whisper_decodes_over_the_languages_tokens_unless_told_otherwise():
    assert Settings.from_env({}).stt_vocabulary == "auto"
    assert Settings.from_env({"STT_VOCABULARY": "FULL"}).stt_vocabulary == "full"


def test_the_event_loop_is_asyncio_unless_uvloop_is_asked_for_and_installed(monkeypatch):
    assert Settings.from_env({}).event_loop == "asyncio"
    assert Settings.from_env({"EVENT_LOOP": "AsyncIO"}).event_loop == "asyncio"
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a, **k: None if name == "uvloop" else object())
    with pytest.raises(SettingsError, match="EVENT_LOOP=uvloop, but uvloop is not installed"):
        Settings.from_env({"EVENT_LOOP": "uvloop"})
