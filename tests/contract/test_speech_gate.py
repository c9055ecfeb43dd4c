"""The speech gate (Silero VAD from faster-whisper's assets) on the committed fixtures, and its policy."""

from __future__ import annotations

import numpy as np
import pytest

from balto.adapters.silero_gate import load_silero_gate
from balto.domain.vad import SpeechGatePolicy
from tests.support.audio import FIXTURES, fixture_manifest, read_wav


@pytest.fixture(scope="module")
def gate():
    gate = load_silero_gate()
    yield gate
    gate.close()


def test_each_spoken_utterance_passes(gate):
    pcm = read_wav(FIXTURES / "balcao_pt.wav")
    policy = SpeechGatePolicy()
    for utterance in fixture_manifest()["balcao_pt.wav"]["utterances"]:
        piece = pcm[int(utterance["start_s"] * 16_000) : int(utterance["end_s"] * 16_000)]
        probabilities = gate.probabilities(piece)
        assert policy.passes(probabilities, gate.frame_ms), utterance


@pytest.mark.parametrize("level", [0, 300, 3000])
def test_silence_and_steady_noise_do_not_pass(gate, level):
    rng = np.random.default_rng(level)
    noise = (rng.standard_normal(3 * 16_000) * level).astype(np.int16)
    assert not SpeechGatePolicy().passes(gate.probabilities(noise), gate.frame_ms)


async def test_the_async_call_answers_per_32_ms(gate):
    probabilities = await gate.speech_probabilities(np.zeros(16_000, dtype=np.int16))
    assert gate.frame_ms == 32.0 and probabilities.shape == (32,)  # 16,000 samples padded to 32 x 512


def test_the_policy_counts_frames_at_or_above_the_threshold():
    policy = SpeechGatePolicy(threshold=0.5, min_speech_ms=64)
    assert policy.speech_ms(np.array([0.2, 0.5, 0.9, 0.49]), 32) == 64
    assert policy.passes(np.array([0.5, 0.6]), 32)
    assert not policy.passes(np.array([0.9]), 32)
    assert not policy.passes(np.array([]), 32)
