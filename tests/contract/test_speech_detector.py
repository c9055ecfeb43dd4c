"""SpeechDetector contract: the energy fake and webrtcvad agree on clear cases."""

from __future__ import annotations

import numpy as np
import pytest

from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.domain.vad import FRAME_SAMPLES
from tests.fakes import EnergySpeechDetector
from tests.support.audio import FIXTURES, fixture_manifest, read_wav


@pytest.fixture(params=["energy_fake", "webrtcvad"])
def detector(request):
    return EnergySpeechDetector() if request.param == "energy_fake" else WebRtcSpeechDetector(2)


def frames(pcm: np.ndarray) -> list[np.ndarray]:
    usable = pcm.size - pcm.size % FRAME_SAMPLES
    return [pcm[i : i + FRAME_SAMPLES] for i in range(0, usable, FRAME_SAMPLES)]


def test_digital_silence_is_not_voiced(detector):
    assert not any(detector.is_voiced(f) for f in frames(np.zeros(16_000, dtype=np.int16)))


def test_speech_fixture_is_mostly_voiced_inside_utterances_and_not_outside(detector):
    pcm = read_wav(FIXTURES / "balcao_pt.wav")
    utterances = fixture_manifest()["balcao_pt.wav"]["utterances"]
    inside, outside = [], []
    for index, frame in enumerate(frames(pcm)):
        t = (index + 0.5) * 0.03
        voiced = detector.is_voiced(frame)
        if any(u["start_s"] <= t <= u["end_s"] for u in utterances):
            inside.append(voiced)
        elif all(t < u["start_s"] - 0.3 or t > u["end_s"] + 0.3 for u in utterances):
            outside.append(voiced)  # webrtcvad has its own hang-over, so the edges are left out
    assert np.mean(inside) > 0.6
    assert np.mean(outside) < 0.1


def test_wrong_frame_size_is_an_error(detector):
    with pytest.raises(ValueError):
        detector.is_voiced(np.zeros(160, dtype=np.int16))
