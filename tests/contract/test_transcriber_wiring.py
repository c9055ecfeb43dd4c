"""The container builds the transcriber the settings ask for, from its name -> provider mapping, with the
real adapters aimed at local vendor servers; only what is needed is built."""

from __future__ import annotations

import logging

import pytest

from balto.adapters.assemblyai import AssemblyAITranscriber
from balto.app import container as composition
from balto.app.routing import SmartRoutingTranscriber
from balto.app.settings import STT_PROVIDERS, Settings
from tests.support.audio import FIXTURES, read_wav
from tests.support.stt_servers import SttReply

PCM = read_wav(FIXTURES / "bom_dia.wav")


async def test_smart_routing_is_built_over_the_vendors_with_keys_and_fails_over(stt_server, caplog):
    elevenlabs, openai_server = stt_server["elevenlabs"], stt_server["openai"]
    env = {
        "SMART_ROUTING_ENABLED": "true",
        "SMART_ROUTING_PROVIDERS": "elevenlabs,assemblyai,openai",
        "SMART_ROUTING_SHORT_PROVIDER": "none",
        "ELEVENLABS_API_KEY": elevenlabs.api_key,
        "ELEVENLABS_BASE_URL": elevenlabs.base_url,
        "STT_OPENAI_API_KEY": openai_server.api_key,
        "STT_OPENAI_BASE_URL": openai_server.base_url,
    }
    container = composition.build_container(Settings.from_env(env))
    try:
        with caplog.at_level(logging.INFO, logger="balto.app.container"):
            transcriber = await composition.resolve(container.transcriber)
        assert isinstance(transcriber, SmartRoutingTranscriber)
        left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
        assert left_out == [
            "SMART_ROUTING: left out assemblyai (no ASSEMBLYAI_API_KEY); routing over elevenlabs, openai"
        ]
        assert not container.whisper_model.initialized  # no local model for a vendor-only routing
        assert not container.assemblyai_transcriber.initialized

        elevenlabs.script.append(SttReply(status=503))
        openai_server.script.append(SttReply(text="Bom dia, tudo bem?"))
        transcript = await transcriber.transcribe(PCM, "pt")
        assert (transcript.text, transcript.provider) == ("Bom dia, tudo bem?", "openai")
        assert (await transcriber.transcribe(PCM, "pt")).provider == "elevenlabs"
    finally:
        await composition.stop(container)


async def test_routing_off_builds_the_one_provider_named(stt_server):
    server = stt_server["assemblyai"]
    env = {"STT_PROVIDER": "assemblyai", "ASSEMBLYAI_API_KEY": server.api_key, "ASSEMBLYAI_BASE_URL": server.base_url}
    container = composition.build_container(Settings.from_env(env))
    try:
        transcriber = await composition.resolve(container.transcriber)
        assert isinstance(transcriber, AssemblyAITranscriber)
        assert (await transcriber.transcribe(PCM, "pt")).text == "Bom dia"
        assert not container.whisper_model.initialized
    finally:
        await composition.stop(container)


def test_the_container_maps_every_provider_the_settings_know():
    assert set(composition.Container.stt_providers.kwargs) == set(STT_PROVIDERS)


@pytest.fixture
def root_logging():
    """The CLI configures the root logger for a process; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_balto_wer_measures_the_provider_named(stt_server, monkeypatch, tmp_path, root_logging):
    from click.testing import CliRunner

    from balto.app.cli import main

    server = stt_server["elevenlabs"]
    server.default = SttReply(text="Bom dia.")
    monkeypatch.setenv("ELEVENLABS_API_KEY", server.api_key)
    monkeypatch.setenv("ELEVENLABS_BASE_URL", server.base_url)
    monkeypatch.setenv("BALTO_REAL_AUDIO_DIR", str(tmp_path))  # no real recordings: fixtures only
    result = CliRunner().invoke(main, ["wer", "--provider", "elevenlabs"])
    assert result.exit_code == 0, result.output
    assert "bom_dia.wav#1                 0.00" in result.output
    assert "elevenlabs on" in result.output and "WER" in result.output
    assert "real speech and noise not measured" in result.output
    strict = CliRunner().invoke(main, ["wer", "--provider", "elevenlabs", "--max-wer", "0.1"])
    assert strict.exit_code == 1 and "above --max-wer 0.1" in strict.output
