"""The noise cleaner against noisereduce itself: `_nonstationary_gate` skips the padding's frames of
zeros, and must give the same audio noisereduce gives."""

import numpy as np
import pytest

from balto.adapters.noisereduce_cleaner import PADDING, NoiseReduceCleaner
from tests.support.audio import FIXTURES, read_wav

noisereduce = pytest.importorskip("noisereduce")


def _reference(pcm: np.ndarray, padding: int, stationary: bool = False) -> np.ndarray:
    audio = pcm.astype(np.float32) / 32768.0
    cleaned = noisereduce.reduce_noise(
        y=audio, sr=16_000, stationary=stationary, prop_decrease=0.8, n_jobs=1, padding=padding
    )
    return np.clip(np.round(cleaned * 32768.0), -32768, 32767).astype(np.int16)


def _noisy(samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16_000
    voice = 6000 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return np.clip(voice + rng.standard_normal(samples) * 1500, -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("samples", [2048, 2049, 5555, 16_000 * 4 + 77, 16_000 * 12])
@pytest.mark.parametrize("padding", [PADDING, 12_000, 1024])
def test_the_gate_gives_what_noisereduce_gives(samples, padding):
    pcm = _noisy(samples, seed=samples)
    assert np.array_equal(NoiseReduceCleaner(padding=padding).clean(pcm), _reference(pcm, padding))


def test_a_recorded_conversation_is_cleaned_as_noisereduce_cleans_it():
    pcm = read_wav(FIXTURES / "balcao_pt.wav")
    assert np.array_equal(NoiseReduceCleaner().clean(pcm), _reference(pcm, PADDING))


@pytest.mark.parametrize("cleaner", [NoiseReduceCleaner(padding=0), NoiseReduceCleaner(stationary=True)])
def test_other_settings_go_to_noisereduce(cleaner):
    pcm = _noisy(16_000 * 2, seed=3)
    assert cleaner.clean(pcm).shape == pcm.shape


def test_a_buffer_shorter_than_one_window_is_left_as_it_is():
    pcm = _noisy(2000, seed=4)
    assert NoiseReduceCleaner().clean(pcm) is pcm


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 230])
def test_the_inverse_transform_is_scipys_to_the_bit(frames):
    from scipy.signal import istft

    from balto.adapters.noisereduce_cleaner import HOP, N_FFT, _istft

    rng = np.random.default_rng(frames)
    spectrum = rng.standard_normal((N_FFT // 2 + 1, frames)) + 1j * rng.standard_normal((N_FFT // 2 + 1, frames))
    _, theirs = istft(spectrum, nfft=N_FFT, noverlap=N_FFT - HOP, nperseg=N_FFT)
    assert np.array_equal(_istft(spectrum), theirs)
