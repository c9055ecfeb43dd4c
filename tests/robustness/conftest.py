"""Fixtures for the robustness tests: the fake transcription vendor the live servers use."""

from __future__ import annotations

import pytest

from balto.app.replay import read_wav_16k_mono
from tests.support.audio import FIXTURES
from tests.support.stt_servers import OpenAIAudioStub


@pytest.fixture(scope="session")
def stt_stub():
    with OpenAIAudioStub() as stub:
        yield stub


@pytest.fixture
def stt(stt_stub):
    stt_stub.reset()
    return stt_stub


@pytest.fixture(scope="session")
def speech():
    """The Portuguese counter fixture, 16 kHz mono int16: several sentences with pauses between."""
    return read_wav_16k_mono(FIXTURES / "balcao_pt.wav")
