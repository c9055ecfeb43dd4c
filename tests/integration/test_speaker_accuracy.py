"""Speaker identification accuracy with Resemblyzer and the default calibration (docs/speaker-id.md):
each voice enrolled from 10-20 s, identified on held-apart segments of 2 s and more; voices left out of
the enrolled set (or never enrolled) must come out `desconhecido`. `make bench-speakers` prints the
confusion matrix and how the calibration was chosen."""

from __future__ import annotations

import pytest
from bench.speakers import (
    clustering_f1,
    decide,
    embed_trials,
    enroll_all,
    fixture_voices,
    rates,
    real_voices,
    speakers_dir,
)

from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.app.speakers import Enrollment
from balto.domain.speaker import Calibration

pytestmark = pytest.mark.slow


def measure(embedder, voices):
    enrollment = Enrollment(embedder, profiles=None, new_detector=lambda: WebRtcSpeechDetector(2))  # type: ignore[arg-type]
    enrolled = enroll_all(enrollment, voices)
    # 2 and 3 s keep the test quick; `make bench-speakers` adds 1, 1.5 and 5 s.
    trials, cpu_ms = embed_trials(embedder, voices, lengths=(2.0, 3.0))
    return enrolled, trials, decide(enrolled, trials, Calibration()), cpu_ms


def test_six_real_speakers(resemblyzer_embedder):
    folder = speakers_dir()
    if folder is None:
        pytest.skip("../shared/audio/pt_speakers (real recordings) is not present; set BALTO_REAL_AUDIO_DIR")
    voices = real_voices(folder)
    assert len(voices) >= 6
    assert all(10.0 <= sum(p.size for _, p in v.enroll) / 16_000 <= 20.0 for v in voices)
    _, trials, decisions, cpu_ms = measure(resemblyzer_embedder, voices)
    top1, rejected = rates(decisions)
    assert top1 >= 0.95, f"top-1 {top1:.1%}"
    assert rejected >= 0.90, f"left-out voices came out desconhecido in {rejected:.1%} of segments"
    # Two customers in one conversation are told apart.
    assert clustering_f1(trials, 0.64, 2) >= 0.9
    assert cpu_ms < 100, f"{cpu_ms:.0f} CPU ms per second of speech"


def test_committed_espeak_voices(resemblyzer_embedder):
    """The same measure on the committed synthetic voices, so the suite checks something without the
    shared recordings. espeak voices sit close together in Resemblyzer's space, so only the voices
    that were never enrolled are held to the unknown rate (a left-out espeak voice often still
    resembles an enrolled one above the threshold tuned on real voices; the figures are in the docs)."""
    voices = fixture_voices()
    enrolled, _, decisions, _ = measure(resemblyzer_embedder, voices)
    assert len(enrolled) == 6
    top1, _ = rates(decisions)
    never = [v.name for v in voices if not v.enrolled]
    _, never_rejected = rates(decisions, voices=never)
    assert top1 >= 0.95, f"top-1 {top1:.1%}"
    assert never_rejected >= 0.90, f"never-enrolled voices came out desconhecido in {never_rejected:.1%}"
