"""AudioCleaner on noisereduce's spectral gating (stateless: each call sees only the audio it gets)."""

from __future__ import annotations

import numpy as np

from balto.ports.audio import AudioCleaner

# noisereduce's zeros on each side of a buffer. They are part of its noise estimate: without them
# speaker identification lost 2-4 points of top-1 in cafe noise (docs/performance.md, "Tried before,
# and not kept"). They cost nothing to transform: `_nonstationary_gate` skips them.
PADDING = 30_000

# noisereduce.reduce_noise's defaults, which the gate below reproduces.
N_FFT = 1024
HOP = N_FFT // 4
TIME_CONSTANT_S = 2.0
FREQ_MASK_SMOOTH_HZ = 500
TIME_MASK_SMOOTH_MS = 50
THRESH_N_MULT = 2.0
SIGMOID_SLOPE = 10.0
CHUNK_SIZE = 600_000  # noisereduce cuts longer buffers into chunks; those go to it as they are


class NoiseReduceCleaner(AudioCleaner):
    """Spectral gating over one buffer at a time.

    `stationary=False` estimates the noise per frequency over a sliding window inside the buffer,
    which suits a shop (voices, a coffee machine) better than one fixed noise profile; `prop_decrease`
    below 1 leaves some noise in, which Whisper copes with better than with gating artefacts.
    """

    def __init__(
        self, stationary: bool = False, prop_decrease: float = 0.8, sample_rate: int = 16_000, padding: int = PADDING
    ) -> None:
        self._stationary = stationary
        self._padding = padding
        self._prop_decrease = prop_decrease
        self._rate = sample_rate

    def clean(self, pcm: np.ndarray) -> np.ndarray:
        if pcm.size < 2048:  # shorter than one FFT window: nothing to estimate noise from
            return pcm
        audio = pcm.astype(np.float32) / 32768.0
        if not self._stationary and self._padding >= N_FFT and pcm.size <= CHUNK_SIZE:
            cleaned = _nonstationary_gate(audio, self._rate, self._prop_decrease, self._padding)
        else:
            import noisereduce

            cleaned = noisereduce.reduce_noise(
                y=audio,
                sr=self._rate,
                stationary=self._stationary,
                prop_decrease=self._prop_decrease,
                n_jobs=1,
                padding=self._padding,
            )
        return np.clip(np.round(cleaned * 32768.0), -32768, 32767).astype(np.int16)


def _nonstationary_gate(audio: np.ndarray, rate: int, prop_decrease: float, padding: int) -> np.ndarray:
    """`noisereduce.reduce_noise(y=audio, sr=rate, stationary=False, prop_decrease=..., padding=...)`,
    the same arithmetic on the frames that touch the audio only.

    noisereduce transforms the audio with `padding` zeros on each side, so about half of a 3.6 s
    segment's STFT frames are frames of zeros, and so are their spectra. Here only the frames that
    overlap the audio are transformed, masked and inverted; the noise estimate, an IIR filter run
    forwards and backwards along time, still runs over every frame, zeros included, so the zeros
    weigh in it exactly as in noisereduce. A test holds the output equal to noisereduce's.
    """
    from scipy.signal import fftconvolve, filtfilt, stft

    n = audio.size
    frames = (n + 2 * padding) // HOP + 1  # scipy's stft pads N_FFT // 2 zeros on each side
    start, end = N_FFT // 2 + padding, N_FFT // 2 + padding + n  # the audio in that padded signal
    first, stop = (start - N_FFT) // HOP + 1, (end - 1) // HOP + 1  # the frames overlapping it
    offset = first * HOP
    signal = np.zeros((stop - 1) * HOP + N_FFT - offset)  # float64, as noisereduce's chunk
    signal[start - offset : end - offset] = audio
    noverlap = N_FFT - HOP
    _, _, spectrum = stft(signal, nfft=N_FFT, noverlap=noverlap, nperseg=N_FFT, boundary=None, padded=False)

    magnitude = np.zeros((spectrum.shape[0], frames))
    magnitude[:, first:stop] = np.abs(spectrum)
    t_frames = TIME_CONSTANT_S * rate / float(HOP)
    b = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    smooth = filtfilt([b], [1, b - 1], magnitude, axis=-1, padtype=None)

    reach = int(TIME_MASK_SMOOTH_MS / ((HOP / rate) * 1000))  # the mask's smoothing, in frames
    lo, hi = max(0, first - reach), min(frames, stop + reach)
    above = (magnitude[:, lo:hi] - smooth[:, lo:hi]) / smooth[:, lo:hi]
    mask = 1 / (1 + np.exp(-(above - THRESH_N_MULT) * SIGMOID_SLOPE))
    kernel = _smoothing_filter(int(FREQ_MASK_SMOOTH_HZ / (rate / (N_FFT / 2))), reach)
    mask = fftconvolve(mask, kernel, mode="same")[:, first - lo : stop - lo]
    mask = mask * prop_decrease + (1.0 - prop_decrease)

    denoised = _istft(spectrum * mask)
    # denoised[i] is the padded signal's sample offset + N_FFT // 2 + i
    return denoised[start - offset - N_FFT // 2 : end - offset - N_FFT // 2].astype(audio.dtype)


def _istft(spectrum: np.ndarray) -> np.ndarray:
    """`scipy.signal.istft(spectrum, nfft=N_FFT, noverlap=N_FFT - HOP, nperseg=N_FFT)[1]`, with its
    overlap-add done in four strided additions instead of scipy's Python loop over the frames (0.5-2.5
    ms of a 3.6 s segment's 12-30 on Zen 3: docs/performance.md, item 24). scipy adds the frames into
    the output in frame order, and so does this: an output block of HOP samples gets frame i - 3's
    last block first, then frame i - 2's third, and so on, each added to the sum before it. The same
    additions in the same order give the same bits (the contract test holds the cleaner's output
    equal to noisereduce's).
    """
    from scipy import fft
    from scipy.signal import get_window

    window = get_window("hann", N_FFT)
    frames = fft.irfft(spectrum, axis=-2, n=N_FFT)[..., :N_FFT, :]
    frames *= window.sum()
    count, blocks = frames.shape[-1], N_FFT // HOP
    windowed = (frames.T * window).reshape(count, blocks, HOP)
    squares = (window**2).reshape(blocks, HOP)
    out = np.zeros((count + blocks - 1, HOP))
    norm = np.zeros_like(out)
    for k in reversed(range(blocks)):  # frame i's block k lands in output block i + k
        out[k : k + count] += windowed[:, k]
        norm[k : k + count] += squares[k]
    x = out.reshape(-1)[N_FFT // 2 : -(N_FFT // 2)]
    scale = norm.reshape(-1)[N_FFT // 2 : -(N_FFT // 2)]
    x /= np.where(scale > 1e-10, scale, 1.0)
    return x


def _smoothing_filter(n_grad_freq: int, n_grad_time: int) -> np.ndarray:
    """noisereduce's triangular kernel that smooths the mask over frequency and time."""

    def ramp(n: int) -> np.ndarray:
        return np.concatenate([np.linspace(0, 1, n + 1, endpoint=False), np.linspace(1, 0, n + 2)])[1:-1]

    kernel = np.outer(ramp(n_grad_freq), ramp(n_grad_time))
    return kernel / np.sum(kernel)
