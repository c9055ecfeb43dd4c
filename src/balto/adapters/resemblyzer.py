"""Resemblyzer's pretrained voice encoder (GE2E LSTM, 256-d): the default speaker embedder.

Its weights ship inside the PyPI wheel, so it works offline. The encoder is loaded once per process
(a container Resource). The mel spectrogram is computed here with numpy rather than by
`resemblyzer.wav_to_mel_spectrogram`: that goes through librosa, whose numba-compiled first call
costs seconds; the filterbank is still librosa's, built once at load, and a test holds the two equal.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from balto.adapters.torch_threads import use_torch_threads
from balto.domain.speaker import EmbeddingError, unit
from balto.ports.inference import SpeakerEmbedder

log = logging.getLogger(__name__)

RATE = 16_000
N_FFT = 400  # 25 ms windows
HOP = 160  # 10 ms steps
N_MELS = 40
PARTIAL_RATE = 1.3  # partial 1.6 s windows per second, as resemblyzer's embed_utterance
MIN_COVERAGE = 0.75
MIN_VOICED_SAMPLES = RATE // 4  # below this, resemblyzer's silence trimming kept too little to trust


class ResemblyzerEmbedder(SpeakerEmbedder):
    """Speech in, Resemblyzer's utterance embedding out: the unit mean of its 1.6 s partial embeddings,
    after the same volume normalisation and long-silence trimming resemblyzer's `preprocess_wav` does."""

    def __init__(
        self,
        encoder: Any,
        mel_basis: np.ndarray,
        name: str = "resemblyzer",
        threads: int = 0,
        partial_rate: float = PARTIAL_RATE,
    ) -> None:
        self._encoder = encoder
        self._partial_rate = partial_rate
        self._threads = threads
        self._mel_basis = mel_basis.astype(np.float32)
        self._window = _hann(N_FFT)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return 256

    @property
    def partial_rate(self) -> float:
        return self._partial_rate

    def embed(self, pcm: np.ndarray) -> np.ndarray:
        import torch
        from resemblyzer.audio import normalize_volume

        if pcm.ndim != 1 or pcm.size < HOP:
            raise EmbeddingError(f"expected at least {HOP} mono samples, got shape {pcm.shape}")
        use_torch_threads(self._threads)  # this call's thread: usually the speaker executor's
        wav = pcm.astype(np.float32) / 32768.0
        if not np.any(wav):
            raise EmbeddingError("silent audio has no voice to embed")
        wav = normalize_volume(wav, -30, increase_only=True)
        trimmed = trim_long_silences(wav)
        # The VAD upstream already called this speech; if resemblyzer's stricter VAD keeps almost
        # nothing, embed what we were given rather than a few frames.
        if trimmed.size >= MIN_VOICED_SAMPLES:
            wav = trimmed
        wav_slices, mel_slices = self._encoder.compute_partial_slices(wav.size, self._partial_rate, MIN_COVERAGE)
        if wav_slices[-1].stop >= wav.size:
            wav = np.pad(wav, (0, wav_slices[-1].stop - wav.size))
        mel = self.mel_spectrogram(wav)
        mels = np.stack([mel[s] for s in mel_slices])
        with torch.inference_mode():
            partials = self._encoder(torch.from_numpy(mels)).numpy()
        return unit(partials.mean(axis=0))

    def mel_spectrogram(self, wav: np.ndarray) -> np.ndarray:
        """librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160, n_mels=40).T:
        centred frames with zero padding, a periodic Hann window, the power spectrum, the mel filters."""
        padded = np.pad(wav.astype(np.float32), N_FFT // 2)
        frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
        power = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2
        return (power @ self._mel_basis.T).astype(np.float32)


def trim_long_silences(wav: np.ndarray) -> np.ndarray:
    """`resemblyzer.audio.trim_long_silences`: the audio less its silences longer than resemblyzer's
    limit (webrtcvad in mode 3 over 30 ms windows, smoothed and dilated by its `hparams`), the same
    samples. resemblyzer turns the audio into bytes with `struct.pack` over every sample as a Python
    argument: about 4 ms of the 34-35 ms an embedding of a 3.6 s segment cost, where numpy's `tobytes`
    gives the same bytes (native int16, the order `struct`'s "h" uses) in microseconds. A contract
    test holds the two equal."""
    import webrtcvad
    from resemblyzer.audio import int16_max
    from resemblyzer.hparams import sampling_rate, vad_max_silence_length, vad_moving_average_width, vad_window_length
    from scipy.ndimage import binary_dilation

    window = vad_window_length * sampling_rate // 1000
    wav = wav[: wav.size - wav.size % window]
    pcm = np.round(wav * int16_max).astype(np.int16).tobytes()
    vad = webrtcvad.Vad(3)
    step = 2 * window  # bytes
    voiced = np.array([vad.is_speech(pcm[at : at + step], sampling_rate) for at in range(0, len(pcm), step)], float)
    # A centred moving average of `width` windows (zeros beyond the ends), rounded: more than half voiced.
    width = vad_moving_average_width
    padded = np.concatenate((np.zeros((width - 1) // 2), voiced, np.zeros(width // 2)))
    sums = np.cumsum(padded)
    sums[width:] -= sums[:-width]  # numpy buffers overlapping operands
    mask = np.round(sums[width - 1 :] / width).astype(bool)
    mask = binary_dilation(mask, np.ones(vad_max_silence_length + 1))
    return wav[np.repeat(mask, window)]


def _hann(n: int) -> np.ndarray:
    # Periodic (fftbins=True) Hann, as librosa's stft uses.
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def load_resemblyzer(
    weights: Path | None = None, threads: int = 1, partial_rate: float = PARTIAL_RATE
) -> ResemblyzerEmbedder:
    """Load the encoder (the wheel's weights, or a compatible `.pt`), once per process; slow (seconds)."""
    import warnings

    with warnings.catch_warnings():
        # resemblyzer imports scipy.ndimage.morphology (deprecated since SciPy 1.8) and webrtcvad,
        # which imports pkg_resources (deprecated in setuptools 80).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        import librosa
        from resemblyzer import VoiceEncoder

    # Whisper runs beside it; one thread per embedding keeps them from fighting over the cores.
    use_torch_threads(threads)
    weights = weights.expanduser() if weights is not None else None
    if weights is not None and not weights.is_file():
        raise FileNotFoundError(f"SPEAKER_MODEL: no Resemblyzer weights file at {weights}")
    encoder = VoiceEncoder("cpu", verbose=False, weights_fpath=weights)
    encoder.eval()
    mel_basis = librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=N_MELS)
    name = "resemblyzer" if weights is None else f"resemblyzer:{weights.name}"
    embedder = ResemblyzerEmbedder(encoder, mel_basis, name, threads, partial_rate)
    # The first pass through the LSTM allocates and picks kernels; pay that here, not on a customer.
    rng = np.random.default_rng(0)
    embedder.embed((rng.standard_normal(RATE) * 3000).astype(np.int16))
    log.info("speaker embedder %s loaded (%d-d)", embedder.name, embedder.dim)
    return embedder
