"""The VAD as a counter sees it: webrtcvad + the energy gate + the segmenter, on synthetic signals and
the committed speech fixture mixed with noise. Times are checked against the fixture's manifest."""

from __future__ import annotations

import numpy as np
import pytest

from balto.adapters.webrtc_vad import WebRtcSpeechDetector
from balto.domain.vad import FRAME_SAMPLES, Segmenter, SpeechSegment, VadPolicy
from tests.support.audio import FIXTURES, fixture_manifest, mix_at_snr, pink_noise, read_wav, silence

SPEECH = read_wav(FIXTURES / "balcao_pt.wav")
TRUTH = [(u["speech_start_s"], u["speech_end_s"]) for u in fixture_manifest()["balcao_pt.wav"]["utterances"]]
LEAD = 3.0  # seconds of background before the speech, as a counter streams before anyone talks


def segments(pcm: np.ndarray, policy: VadPolicy | None = None) -> list[SpeechSegment]:
    detector, segmenter = WebRtcSpeechDetector(2), Segmenter(policy=policy or VadPolicy())
    out = []
    for offset in range(0, pcm.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = pcm[offset : offset + FRAME_SAMPLES]
        seg = segmenter.push(frame, detector.is_voiced(frame), offset / 16_000)
        if seg:
            out.append(seg)
    last = segmenter.flush()
    return [*out, last] if last else out


def with_background(speech: np.ndarray, noise: np.ndarray | None, snr_db: float | None, seed: int = 1) -> np.ndarray:
    pcm = np.concatenate([silence(LEAD), speech, silence(1.0)])
    if noise is None:
        return pcm
    return mix_at_snr(pcm, noise, snr_db, np.random.default_rng(seed))


def assert_matches_truth(found: list[SpeechSegment], tolerance_s: float = 0.1) -> None:
    """Each utterance begins and ends within the tolerance; a pause inside a sentence may split it
    (the hang-over trades that for latency), but no segment lies outside the speech."""
    spans = [(s.speech_start_s - LEAD, s.speech_end_s - LEAD) for s in found]
    for start, end in TRUTH:
        inside = [span for span in spans if span[0] < end and span[1] > start]
        assert inside, (start, end, spans)
        assert min(s for s, _ in inside) == pytest.approx(start, abs=tolerance_s), spans
        assert max(e for _, e in inside) == pytest.approx(end, abs=tolerance_s), spans
    assert all(any(s < end and e > start for start, end in TRUTH) for s, e in spans), spans


def test_clean_speech_segments_within_100_ms():
    assert_matches_truth(segments(with_background(SPEECH, None, None)))


@pytest.mark.parametrize("snr_db", [20.0, 10.0])
def test_speech_in_pink_noise_segments_within_100_ms(snr_db):
    noise = pink_noise(10.0, np.random.default_rng(0))
    assert_matches_truth(segments(with_background(SPEECH, noise, snr_db)))


def test_speech_in_pink_noise_at_5_db_is_still_found():
    noise = pink_noise(10.0, np.random.default_rng(0))
    found = segments(with_background(SPEECH, noise, 5.0))
    for start, end in TRUTH:
        assert any(s.speech_start_s - LEAD < end and s.speech_end_s - LEAD > start for s in found)


def white(seconds: float, rms: float, seed: int = 0) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(0, rms, int(seconds * 16_000)), -32768, 32767).astype(np.int16)


def tone(seconds: float, freq: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param(silence(10.0), id="digital-silence"),
        pytest.param(white(10.0, 30.0), id="white-30"),
        pytest.param(white(10.0, 300.0), id="white-300"),
        pytest.param(white(10.0, 3000.0), id="white-3000"),
        pytest.param(pink_noise(10.0, np.random.default_rng(1), rms=500.0), id="pink-500"),
        pytest.param(pink_noise(10.0, np.random.default_rng(2), rms=4000.0), id="pink-4000"),
        pytest.param(tone(10.0, 220.0, 3000.0), id="tone-220"),
        pytest.param(tone(10.0, 1000.0, 8000.0), id="tone-1k"),
        pytest.param(tone(10.0, 60.0, 5000.0) + white(10.0, 100.0), id="mains-hum"),
    ],
)
def test_noise_only_input_makes_no_segment_at_default_settings(signal):
    assert segments(signal) == []


def test_quiet_speech_is_found_by_default_and_suppressed_by_a_higher_min_energy():
    quiet = (SPEECH * 0.05).astype(np.int16)  # -26 dB: someone speaking away from the microphone
    pcm = with_background(quiet, None, None)
    assert len(segments(pcm)) == len(TRUTH)
    assert segments(pcm, VadPolicy(min_energy=400.0)) == []


def test_higher_threshold_multiplier_suppresses_speech_close_to_the_room_noise():
    noise = pink_noise(10.0, np.random.default_rng(0))
    pcm = with_background(SPEECH, noise, 5.0)
    assert segments(pcm, VadPolicy(threshold_multiplier=1.5))
    assert segments(pcm, VadPolicy(threshold_multiplier=6.0)) == []
