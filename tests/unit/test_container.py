"""The composition root picks recommenders from settings: playbook alone offline, LLM (+ fallback) with keys."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from dependency_injector import providers

from balto.adapters.faster_whisper import default_after_decodes
from balto.adapters.openai_llm import OpenAICompatibleRecommender
from balto.adapters.playbook import PlaybookRecommender
from balto.app import container as composition
from balto.app.recommenders import FallbackRecommender
from balto.app.settings import Settings
from balto.domain.playbook import PlaybookError


@pytest.fixture
async def build():
    built: list[composition.Container] = []

    def make(env: dict[str, str]) -> composition.Container:
        container = composition.build_container(Settings.from_env(env))
        built.append(container)
        return container

    yield make
    for container in built:
        await composition.stop(container)


async def test_offline_the_playbook_is_the_recommender(build):
    container = build({})
    composition.check(container)
    assert await composition.resolve(container.recommender) is None
    instant = container.instant_recommender()
    assert isinstance(instant, PlaybookRecommender) and instant.playbook.name == "farmacia"
    assert [item.id for item in container.checklist()] == [item.id for item in instant.playbook.checklist]


async def test_with_a_key_both_run(build):
    container = build({"OPENAI_API_KEY": "sk-x", "LLM_TIMEOUT_S": "3"})
    llm = await composition.resolve(container.recommender)
    assert isinstance(llm, OpenAICompatibleRecommender) and llm.name == "openai"
    assert isinstance(container.instant_recommender(), PlaybookRecommender)


async def test_a_fallback_provider_wraps_the_primary(build):
    container = build({"XAI_API_KEY": "x", "LLM_FALLBACK_PROVIDER": "openai", "OPENAI_API_KEY": "o"})
    llm = await composition.resolve(container.recommender)
    assert isinstance(llm, FallbackRecommender) and llm.name == "grok+openai"


async def test_the_playbook_can_be_turned_off(build):
    container = build({"PLAYBOOK_ENABLED": "false", "PLAYBOOK_FILE": "/nao/existe.yaml"})
    composition.check(container)  # a missing file does not matter when the playbook is off
    assert container.instant_recommender() is None and container.checklist() == ()


async def test_a_bad_playbook_stops_the_start_up_naming_the_file_and_rule(build, tmp_path):
    bad = tmp_path / "loja.yaml"
    bad.write_text("regras:\n  - id: febre\n    frases: [febre]\n", encoding="utf-8")
    container = build({"PLAYBOOK_FILE": str(bad)})
    with pytest.raises(PlaybookError) as info:
        composition.check(container)
    assert str(bad) in str(info.value) and "rule 'febre'" in str(info.value)


def test_each_connection_gets_its_own_speech_stream_from_the_speech_gate_and_none_without_it():
    class Gate:
        def stream(self):
            return object()

    gate = Gate()
    new_stream = composition._speech_streams(gate)
    assert new_stream is not None and new_stream() is not new_stream()
    assert composition._speech_streams(None) is None


def test_one_measured_early_start_timing_unless_turned_off():
    timing = composition._early_timing(Settings.from_env({"VAD_HANG_OVER_MS": "600", "VAD_EARLY_START_MS": "200"}))
    assert timing is not None and (timing.hang_over_ms, timing.earliest_ms, timing.start_ms) == (600, 200, 200)
    assert composition._early_timing(Settings.from_env({"VAD_EARLY_START_MEASURED": "false"})) is None
    assert composition._early_timing(Settings.from_env({"VAD_EARLY_START_MS": "0"})) is None


def test_the_voice_is_timed_a_margin_before_the_close_when_the_early_start_is_timed():
    timing = composition._early_timing(
        Settings.from_env({"VAD_HANG_OVER_MS": "600", "VAD_EARLY_START_MS": "200"}),
        composition.VOICE_MEDIANS_BEFORE_CLOSE,
    )
    assert timing is not None and (timing.hang_over_ms, timing.earliest_ms) == (600, 200)
    assert timing.scale == composition.VOICE_MEDIANS_BEFORE_CLOSE > 1
    assert composition._early_timing(Settings.from_env({"VAD_EARLY_START_MEASURED": "false"}), 1.5) is None
    assert composition._early_timing(Settings.from_env({"VAD_EARLY_START_MS": "0"}), 1.5) is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (4, None, float(default_after_decodes()))),
        ({"STT_BATCH_AFTER_MS": "250"}, (4, 0.25, 1.0)),
        ({"STT_BATCH": "1", "STT_BATCH_AFTER_MS": "250"}, (1, 0.25, 1.0)),
    ],
)
def test_local_whisper_batches_as_the_settings_say(env, expected):
    container = composition.build_container(Settings.from_env(env))
    model = SimpleNamespace(generate_with_fallback=lambda *args, **kwargs: None)  # no weights needed to wire it
    container.whisper_model.override(providers.Object(model))
    container.restricted_whisper.override(providers.Object(None))
    container.stt_executor.override(providers.Object(None))
    whisper = container.whisper_transcriber()
    assert (whisper._batch, whisper._batch_after_s, whisper._batch_after_decodes) == expected


@pytest.mark.parametrize(
    "env",
    [{"STT_VOCABULARY": "full"}, {"STT_LANGUAGE": "auto"}, {"STT_LANGUAGE": "es"}, {"STT_PACK": "true"}],
)
async def test_whisper_keeps_its_whole_vocabulary_where_no_list_applies(env):
    # Decided before any model is read: none is needed (the path below does not exist).
    settings = Settings.from_env({**env, "STT_MODEL": "/nao/existe"})
    resource = composition._restricted_whisper(settings, model=None)
    assert await anext(resource) is None


async def test_a_model_it_cannot_restrict_keeps_the_whole_vocabulary(tmp_path, caplog):
    (tmp_path / "vocabulary.json").write_text('["a", "b"]')  # not Whisper's multilingual vocabulary
    settings = Settings.from_env({"STT_MODEL": str(tmp_path), "BALTO_MODEL_CACHE": str(tmp_path / "cache")})
    assert await anext(composition._restricted_whisper(settings, model=None)) is None
    assert "keeps its whole vocabulary" in caplog.text
