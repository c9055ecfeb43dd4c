"""Speaker identification rules: calibrated probabilities with an unknown class, clustering, enrolment."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from balto.domain.speaker import (
    UNKNOWN,
    Calibration,
    EmbeddingError,
    EnrollmentError,
    EnrollmentPolicy,
    SpeakerMatch,
    SpeakerProfile,
    UnknownVoices,
    average_embedding,
    cosine,
    normalise_role,
    speech_seconds,
    unit,
    unknown_label,
)


def profile(pid: str, name: str, role: str | None = "atendente") -> SpeakerProfile:
    return SpeakerProfile(name=name, role=role, embedding=np.ones(3), id=pid)


def test_unit_scales_to_length_one_and_refuses_what_is_not_a_vector():
    assert np.allclose(unit([3.0, 4.0]), [0.6, 0.8])
    assert unit([3.0, 4.0]).dtype == np.float32
    for bad in ([], [0.0, 0.0], [1.0, float("nan")], [float("inf"), 1.0]):
        with pytest.raises(EmbeddingError):
            unit(bad)


def test_average_embedding_weights_each_recording():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(average_embedding([a, b]), [math.sqrt(0.5), math.sqrt(0.5)])
    weighted = average_embedding([a, b], [3.0, 1.0])
    assert np.allclose(weighted, unit([3.0, 1.0]))
    assert cosine(weighted, a) > cosine(weighted, b)
    with pytest.raises(EmbeddingError):
        average_embedding([])
    with pytest.raises(EmbeddingError):
        average_embedding([a, b], [1.0, 0.0])


def test_threshold_grows_with_duration_and_is_clamped_where_it_was_measured():
    c = Calibration(threshold=0.7, slope=0.04, reference_s=2.0, min_s=1.0, max_s=6.0)
    assert c.threshold_for(2.0) == pytest.approx(0.7)
    assert c.threshold_for(4.0) == pytest.approx(0.74)
    assert c.threshold_for(1.0) == pytest.approx(0.66)
    assert c.threshold_for(0.3) == pytest.approx(0.66)  # clamped at min_s
    assert c.threshold_for(60.0) == pytest.approx(0.7 + 0.04 * math.log2(3))  # clamped at max_s
    assert Calibration(threshold=0.7, slope=0.0).threshold_for(10.0) == pytest.approx(0.7)


@pytest.mark.parametrize(
    "kwargs", [{"threshold": 1.5}, {"temperature": 0.0}, {"min_s": 3.0, "reference_s": 2.0}, {"max_s": 1.0}]
)
def test_calibration_refuses_values_it_cannot_work_with(kwargs):
    with pytest.raises(ValueError):
        Calibration(**kwargs)


def test_best_profile_above_the_threshold_wins_and_probabilities_sum_to_one():
    c = Calibration(threshold=0.7, slope=0.0, temperature=0.02)
    match = c.match([(profile("1", "Ana"), 0.85), (profile("2", "Bia"), 0.6)], duration_s=2.0)
    assert match.top_id == "1" and match.top_name == "Ana" and match.top_role == "atendente"
    assert match.score == pytest.approx(0.85)
    assert sum(p.prob for p in match.probabilities) == pytest.approx(1.0)
    assert [p.id for p in match.probabilities] == ["1", UNKNOWN, "2"]  # sorted by probability
    assert [p.prob for p in match.probabilities] == sorted((p.prob for p in match.probabilities), reverse=True)
    # exp((0.85 - 0.7) / 0.02) to 1 against the unknown class.
    assert match.probabilities[1].prob / match.probabilities[0].prob == pytest.approx(math.exp(-7.5), rel=1e-6)


def test_below_the_threshold_the_unknown_class_wins_with_the_threshold_as_its_score():
    c = Calibration(threshold=0.7, slope=0.0, temperature=0.02)
    match = c.match([(profile("1", "Ana"), 0.65)], duration_s=3.0)
    assert match.is_unknown and match.top_id == UNKNOWN
    assert match.score == pytest.approx(0.7)
    assert match.top_role == "cliente"  # an unknown voice at a counter with enrolled staff
    assert match.top_name is None  # named by the connection (see naming_unknown)


def test_a_score_equal_to_the_threshold_is_a_coin_toss_that_goes_to_unknown():
    c = Calibration(threshold=0.7, slope=0.0, temperature=0.02)
    match = c.match([(profile("1", "Ana"), 0.7)], duration_s=2.0)
    assert match.top_id == UNKNOWN
    assert [p.prob for p in match.probabilities] == pytest.approx([0.5, 0.5])


def test_longer_segments_need_a_higher_score():
    c = Calibration(threshold=0.7, slope=0.04)
    candidates = [(profile("1", "Ana"), 0.72)]
    assert c.match(candidates, duration_s=2.0).top_id == "1"
    assert c.match(candidates, duration_s=5.0).top_id == UNKNOWN


def test_nobody_enrolled_means_certainly_unknown():
    match = Calibration().match([], duration_s=2.0, unknown_role=None)
    assert match.top_id == UNKNOWN and match.top_prob == pytest.approx(1.0) and match.top_role is None


def test_speaker_data_json_round_trips_and_names_the_unknown_voice():
    c = Calibration(threshold=0.7, slope=0.0, temperature=0.02)
    match = c.match([(profile("7", "Ana"), 0.5)], duration_s=2.0).naming_unknown("cliente_2")
    data = json.loads(match.to_json())
    assert data[0] == {"id": UNKNOWN, "nome": "cliente_2", "papel": "cliente", "score": 0.7, "prob": data[0]["prob"]}
    assert data[1]["id"] == "7" and data[1]["nome"] == "Ana" and data[1]["score"] == 0.5
    assert set(data[0]) == {"id", "nome", "papel", "score", "prob"}
    again = SpeakerMatch.from_json(match.to_json())
    assert again.top_id == UNKNOWN and again.top_name == "cliente_2" and again.top_role == "cliente"


def test_unknown_voices_are_numbered_by_clustering():
    voices = UnknownVoices(threshold=0.8)
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert voices.assign(a) == 1
    assert voices.assign(a + np.array([0.0, 0.1, 0.0])) == 1  # cosine 0.995 to voice 1
    assert voices.assign(b) == 2
    assert voices.assign(b + np.array([0.1, 0.0, 0.1])) == 2
    assert voices.assign(np.array([0.0, 0.0, 1.0])) == 3
    assert voices.voices == 3


def test_a_voice_mean_follows_its_segments():
    voices = UnknownVoices(threshold=0.9)
    voices.assign(np.array([1.0, 0.0]))
    voices.assign(np.array([1.0, 0.3]))  # cosine 0.958: joins, and pulls the mean towards it
    # cosine 0.894 to the first segment alone, 0.93 to the updated mean: joins voice 1.
    assert voices.assign(np.array([1.0, 0.5])) == 1


def test_past_max_voices_a_new_voice_joins_the_closest():
    voices = UnknownVoices(threshold=0.99, max_voices=2)
    voices.assign(np.array([1.0, 0.0, 0.0]))
    voices.assign(np.array([0.0, 1.0, 0.0]))
    assert voices.assign(np.array([0.9, 0.1, 0.3])) == 1
    assert voices.voices == 2


def test_unknown_labels():
    assert unknown_label(1, "cliente") == "cliente_1"
    assert unknown_label(3, None) == "voz_3"


def test_roles_are_normalised_and_checked():
    assert normalise_role(" Atendente ") == "atendente"
    assert normalise_role("gerente_loja") == "gerente_loja"
    for bad in ("", "dono da loja", "café", "x;drop"):
        with pytest.raises(EnrollmentError):
            normalise_role(bad)


def test_enrollment_policy_boundaries():
    policy = EnrollmentPolicy(min_speech_per_file_s=0.5, min_total_speech_s=5.0, recommended_speech_s=10.0)
    assert policy.check([("a.wav", 10.0)]) == []
    assert policy.check([("a.wav", 6.0), ("b.wav", 4.0)]) == []
    (warning,) = policy.check([("a.wav", 5.0)])
    assert "10-20 s" in warning
    with pytest.raises(EnrollmentError, match=r"only 4\.9 s of speech"):
        policy.check([("a.wav", 4.9)])
    with pytest.raises(EnrollmentError, match=r"no speech found in b\.wav"):
        policy.check([("a.wav", 12.0), ("b.wav", 0.49)])
    with pytest.raises(EnrollmentError, match="no audio given"):
        policy.check([])


def test_speech_seconds_counts_voiced_frames_louder_than_the_floor():
    frame = 480
    loud, quiet = np.full(frame, 3000, dtype=np.int16), np.full(frame, 20, dtype=np.int16)
    pcm = np.concatenate([loud] * 10 + [quiet] * 5 + [loud] * 3 + [np.zeros(100, dtype=np.int16)])
    assert speech_seconds(pcm, lambda f: True, frame, 16_000, min_rms=50.0) == pytest.approx(13 * 0.03)
    assert speech_seconds(pcm, lambda f: False, frame, 16_000, min_rms=50.0) == 0.0
