"""The speech gate (Silero VAD from faster-whisper's assets) on the committed fixtures, and its policy."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from balto.adapters.silero_gate import load_silero_gate
from balto.domain.vad import SpeechGatePolicy, SpeechTrack
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


# -- the stream for the segmenter's pauses (VAD_PAUSE_GATE_MS) ---------------------------------------


def test_a_stream_fed_in_uneven_pieces_gives_one_pass_over_the_whole_stream(gate):
    pcm = read_wav(FIXTURES / "balcao_pt.wav")
    stream = gate.stream()
    pieces, offset = [], 0
    for size in [1440, 1600, 300, 5000, 480] * 200:
        if offset >= pcm.size:
            break
        pieces.append(stream.feed(pcm[offset : offset + size]).result())
        offset += size
    streamed = np.concatenate(pieces)
    whole = pcm[: (pcm.size // 512) * 512]
    assert stream.window_samples == 512 and streamed.size == whole.size // 512
    np.testing.assert_allclose(streamed, gate.probabilities(whole), atol=1e-5)


def test_in_a_stream_a_noise_burst_in_a_pause_scores_far_below_the_voice_after_it(gate):
    pcm = read_wav(FIXTURES / "balcao_pt.wav").astype(np.float64)
    start, end = int(5.45 * 16_000), int(5.85 * 16_000)  # between the two sentences (5.28 s and 6.48 s)
    pcm[start:end] += np.random.default_rng(1).standard_normal(end - start) * 1000
    pcm = np.clip(pcm, -32768, 32767).astype(np.int16)
    stream = gate.stream()
    probabilities = np.concatenate([stream.feed(pcm[i : i + 1440]).result() for i in range(0, pcm.size, 1440)])
    window = lambda seconds: int(seconds * 16_000) // 512  # noqa: E731
    assert probabilities[window(5.45) : window(5.85) + 1].max() < 0.1
    assert probabilities[window(6.48) : window(6.9)].max() > 0.9


def test_the_segment_gate_on_a_streams_windows_passes_each_spoken_utterance(gate):
    pcm = read_wav(FIXTURES / "balcao_pt.wav")
    track = SpeechTrack(512, threshold=0.05, keep=pcm.size // 512 + 1)
    track.extend(gate.stream().feed(pcm).result())
    policy = SpeechGatePolicy()
    for utterance in fixture_manifest()["balcao_pt.wav"]["utterances"]:
        probabilities = track.probabilities(int(utterance["start_s"] * 16_000), int(utterance["end_s"] * 16_000))
        assert probabilities is not None and policy.passes(probabilities, gate.frame_ms), utterance


async def test_a_stream_runs_on_the_gates_thread(gate):
    seen = []
    stream = gate.stream()
    original = stream._run
    stream._run = lambda audio: (seen.append(threading.current_thread().name), original(audio))[1]
    await asyncio.wrap_future(stream.feed(np.zeros(1024, dtype=np.int16)))
    assert seen and seen[0].startswith("speech-gate")
