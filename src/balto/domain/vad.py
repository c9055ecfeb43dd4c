"""Voice activity rules: the per-connection VAD policy, the adaptive noise floor and the segmenter.

Everything here is pure: frames come in as int16 numpy arrays together with the verdict of a
speech detector (webrtcvad in production), and speech segments come out. No I/O, no clock.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from balto.domain.latency import RecentTimes

SAMPLE_RATE = 16_000
FRAME_MS = 30
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 480 samples, the frame webrtcvad accepts at 16 kHz

# Accepted ranges for the handshake's vad_settings. A multiplier below 1 would call the room's own
# background speech; above 10 nothing short of shouting passes. min_energy is an RMS of int16
# samples, so it cannot exceed 32767; above 5000 only clipping audio would pass.
THRESHOLD_MULTIPLIER_RANGE = (1.0, 10.0)
MIN_ENERGY_RANGE = (0.0, 5000.0)


class VadSettingsError(ValueError):
    """A vad_settings value is missing its type or lies outside its documented range."""


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    # bool is an int subclass in Python; "true" is not a sensitivity.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VadSettingsError(f"{name} deve ser um número, recebido {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or not lo <= number <= hi:
        raise VadSettingsError(f"{name} deve estar entre {lo:g} e {hi:g}, recebido {value!r}")
    return number


@dataclass(frozen=True)
class VadPolicy:
    """How loud a frame must be, relative to the room and in absolute terms, to count as speech."""

    threshold_multiplier: float = 1.5
    min_energy: float = 50.0

    def __post_init__(self) -> None:
        _number("threshold_multiplier", self.threshold_multiplier, *THRESHOLD_MULTIPLIER_RANGE)
        _number("min_energy", self.min_energy, *MIN_ENERGY_RANGE)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> VadPolicy:
        """This policy with the handshake's vad_settings applied; unknown keys are an error."""
        if overrides is None:
            return self
        if not isinstance(overrides, Mapping):
            raise VadSettingsError("vad_settings deve ser um objeto JSON")
        unknown = set(overrides) - {"threshold_multiplier", "min_energy"}
        if unknown:
            raise VadSettingsError(f"vad_settings com campos desconhecidos: {', '.join(sorted(unknown))}")
        values = {
            "threshold_multiplier": self.threshold_multiplier,
            "min_energy": self.min_energy,
        }
        for key in ("threshold_multiplier", "min_energy"):
            if key in overrides:
                lo, hi = THRESHOLD_MULTIPLIER_RANGE if key == "threshold_multiplier" else MIN_ENERGY_RANGE
                values[key] = _number(key, overrides[key], lo, hi)
        return VadPolicy(**values)

    def passes_energy(self, rms: float, noise_floor: float, level: float | None = None) -> bool:
        """The energy half of the speech decision; the detector supplies the other half.

        `rms` is compared with `min_energy`; `level` (default `rms`), measured the same way as the
        noise floor, must exceed `threshold_multiplier` times it.
        """
        level = rms if level is None else level
        return rms > self.min_energy and level > self.threshold_multiplier * noise_floor


PRE_EMPHASIS = 0.97


def pre_emphasis_rms(frame: np.ndarray, previous_sample: float) -> float:
    """RMS after a first-order high-pass (y[n] = x[n] - 0.97 x[n-1]).

    Room rumble (traffic, ventilation, pink-like noise) puts its energy below 100 Hz, where 30 ms
    frames fluctuate by 3x from one frame to the next; tracking the floor on the emphasised signal
    keeps that from passing for speech, while voices keep their energy above 300 Hz.
    """
    if frame.size == 0:
        return 0.0
    samples = frame.astype(np.float64)
    emphasised = np.empty_like(samples)
    emphasised[0] = samples[0] - PRE_EMPHASIS * previous_sample
    emphasised[1:] = samples[1:] - PRE_EMPHASIS * samples[:-1]
    return float(np.sqrt(np.mean(emphasised * emphasised)))


def frame_energies(pcm: np.ndarray, previous_sample: float) -> tuple[np.ndarray, np.ndarray]:
    """(rms, pre-emphasised rms) of each 30 ms frame of `pcm` (a whole number of frames), at once."""
    samples = pcm.astype(np.float64)
    emphasised = np.empty_like(samples)
    if samples.size:
        emphasised[0] = samples[0] - PRE_EMPHASIS * previous_sample
        emphasised[1:] = samples[1:] - PRE_EMPHASIS * samples[:-1]
    frames = samples.reshape(-1, FRAME_SAMPLES)
    emph = emphasised.reshape(-1, FRAME_SAMPLES)
    return np.sqrt(np.mean(frames * frames, axis=1)), np.sqrt(np.mean(emph * emph, axis=1))


def frame_rms(frame: np.ndarray) -> float:
    """Root mean square of int16 samples, in int16 units."""
    if frame.size == 0:
        return 0.0
    samples = frame.astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples)))


class NoiseFloor:
    """Background level of the room, by minimum statistics over a sliding window.

    Speech has gaps between words and syllables where the energy drops to the room's background, so a
    low percentile of recent frame energies follows the noise even while someone talks, and rises
    when the room gets louder (a coffee machine starts) without any speech/non-speech decision.
    """

    def __init__(self, window_frames: int = 100, percentile: float = 10.0, initial: float = 0.0) -> None:
        self._window: deque[float] = deque()
        self._sorted: list[float] = []  # the same values, kept sorted: a percentile is one index
        self._size = window_frames
        self._percentile = percentile
        self._initial = initial

    def update(self, rms: float) -> None:
        if len(self._window) == self._size:
            del self._sorted[bisect.bisect_left(self._sorted, self._window.popleft())]
        self._window.append(rms)
        bisect.insort(self._sorted, rms)

    @property
    def level(self) -> float:
        if not self._sorted:
            return self._initial
        # Nearest rank: cheap and, over a window of 100 frames, within a frame of interpolation.
        return self._sorted[round(self._percentile / 100 * (len(self._sorted) - 1))]


@dataclass(frozen=True)
class SpeechGatePolicy:
    """Whether a segment holds speech, from a speech model's per-frame probabilities: at least
    `min_speech_ms` of frames at or above `threshold`. Segments that fail are not transcribed (their
    row says the gate heard no speech); the defaults come from `python -m bench.gate`."""

    threshold: float = 0.5
    min_speech_ms: float = 32.0

    def speech_ms(self, probabilities: np.ndarray, frame_ms: float) -> float:
        return float(np.count_nonzero(probabilities >= self.threshold)) * frame_ms

    def passes(self, probabilities: np.ndarray, frame_ms: float) -> bool:
        return self.speech_ms(probabilities, frame_ms) >= self.min_speech_ms


# Trailing silence a closed segment keeps (Whisper likes a little room after the last word); the
# rest is handed back to the pre-roll, where it may open the next segment.
TAIL_MS = 120


@dataclass(frozen=True)
class SegmenterConfig:
    """Timing of the speech segmenter, in milliseconds of audio.

    pre_roll keeps the quiet onset of the first syllable; hang_over keeps a sentence whole across
    short pauses; min_speech drops clicks and coughs; max_segment forces a cut in a monologue so the
    transcript keeps flowing.
    """

    pre_roll_ms: int = 240
    hang_over_ms: int = 450
    min_speech_ms: int = 240
    max_segment_ms: int = 15_000
    start_frames: int = 3  # consecutive speech frames that open a segment (debounces single blips)
    warmup_ms: int = 240  # no segment opens before the noise floor has seen this much audio
    # Silence after which the open segment is offered early (`Segmenter.take_early`), before the
    # hang-over closes it; 0: never. From TAIL_MS on, the early segment holds exactly the audio the
    # closed one will hold if no speech comes back, so work started on it is the work the close would
    # start (a smaller value counts as TAIL_MS; one at or past the hang-over never comes first).
    early_ms: int = 150
    # Silence after which a frame the VAD hears as speech ends the pause only if the speech model's
    # streamed verdict (`SpeechTrack`) agrees, when the caller passes one; 0: the VAD alone. A burst
    # of noise after a sentence then neither keeps the segment open past its hang-over nor throws
    # away the hearing started early on it (docs/performance.md, item 25).
    pause_gate_ms: int = 120

    def frames(self, ms: int) -> int:
        return max(1, ms // FRAME_MS)


@dataclass
class EarlyStartTiming:
    """When, during the hang-over, to start hearing an offered segment: as late as lets the hearing
    end about when the segment closes. A transcript is sent only once the segment closes, so a
    hearing that ends sooner gains nothing, and every pause that speech breaks after the start costs
    a whole hearing thrown away (in counter speech, started at 150 ms of silence nearly half the
    hearings are thrown away, at 300 ms a fifth: `bench.pauses`, docs/performance.md).

    `observe` takes how long each early hearing took (start to result); the start moves to
    `hang_over_ms` minus the median of the last `window` of them, never before `earliest_ms`
    (the offer, VAD_EARLY_START_MS) and never later than the last piece before the close. Before any
    hearing was timed, it starts at the offer. One per server: every counter's hearings share the
    workers, so they share the estimate."""

    hang_over_ms: int
    earliest_ms: int
    window: int = 64
    # How many medians before the close to start: above 1 for work whose lateness delays the frame
    # while its early start costs little (the speaker's voice, `CounterSession`), so that most of it is done.
    scale: float = 1.0

    def __post_init__(self) -> None:
        self._hearings = RecentTimes(self.window)  # ms
        self.start_ms = float(self.earliest_ms)

    def observe(self, seconds: float) -> None:
        expected_ms = self._hearings.observe(seconds * 1000.0)
        self.start_ms = max(float(self.earliest_ms), self.hang_over_ms - expected_ms * self.scale)

    def due(self, silence_ms: float, piece_ms: float) -> bool:
        """Whether to start now, `silence_ms` into the pause, when pieces of `piece_ms` arrive: at the
        piece nearest the start, and at the latest on the last piece before the hang-over ends."""
        return silence_ms + piece_ms / 2 >= self.start_ms or silence_ms + piece_ms >= self.hang_over_ms


class SpeechTrack:
    """A speech model's verdicts over one connection's stream, read per VAD frame.

    The model (Silero) is fed the whole stream in order, so its state knows the room: its probability
    for a window of `window_samples` is low on a burst of cafe noise and high on a voice. `extend`
    takes the probabilities of the windows completed since the last call; `heard` says, for
    consecutive frames from sample `first_sample` of the stream, whether a window that overlaps the
    frame reaches `threshold`. A frame whose windows are not complete yet is judged by the latest
    complete window; with none at all, it is heard (the VAD is trusted without evidence).
    `probabilities` hands back the windows over a span, for the segment gate. The last `keep`
    windows are kept (the default, 60 s at 32 ms windows, outlasts the longest segment and its wait
    in the queue)."""

    def __init__(self, window_samples: int, threshold: float, keep: int = 1875) -> None:
        if window_samples <= 0:
            raise ValueError(f"window_samples must be positive, got {window_samples}")
        if keep <= 0:
            raise ValueError(f"keep must be positive, got {keep}")
        self.window_samples = window_samples
        self.threshold = threshold
        self._ring = np.zeros(keep, dtype=np.float32)  # window w lies at w % keep
        self._windows = 0  # windows seen since the stream began

    @property
    def windows(self) -> int:
        return self._windows

    @property
    def _oldest(self) -> int:
        return max(0, self._windows - self._ring.size)

    def extend(self, probabilities: np.ndarray) -> None:
        values = np.asarray(probabilities, dtype=np.float32).reshape(-1)
        skipped = max(0, values.size - self._ring.size)  # more than it keeps: only the last are kept
        values = values[skipped:]
        first = (self._windows + skipped) % self._ring.size
        head = min(values.size, self._ring.size - first)
        self._ring[first : first + head] = values[:head]
        self._ring[: values.size - head] = values[head:]
        self._windows += skipped + int(values.size)

    def heard(self, first_sample: int, frames: int) -> list[bool]:
        if not self._windows:
            return [True] * frames
        oldest, ring, keep = self._oldest, self._ring, self._ring.size
        verdicts = []
        for index in range(frames):
            start = first_sample + index * FRAME_SAMPLES
            first = max(start // self.window_samples, oldest)
            last = min((start + FRAME_SAMPLES - 1) // self.window_samples, self._windows - 1)
            if first > last:  # not complete yet (or too old to keep): the latest complete window
                first = last = self._windows - 1
            verdicts.append(any(ring[w % keep] >= self.threshold for w in range(first, last + 1)))
        return verdicts

    def probabilities(self, first_sample: int, end_sample: int) -> np.ndarray | None:
        """The probabilities of the complete windows that overlap samples [first_sample, end_sample),
        in order; None when the first of them is no longer kept or none is complete yet."""
        first = first_sample // self.window_samples
        last = min((end_sample - 1) // self.window_samples, self._windows - 1)
        if first < self._oldest or last < first:
            return None
        return self._ring[np.arange(first, last + 1) % self._ring.size].copy()


@dataclass
class SpeechSegment:
    """A span of speech cut by the segmenter.

    `start_s`/`end_s` bound the audio handed on (pre-roll and a short tail included), in seconds of
    audio since the stream began; `speech_start_s`/`speech_end_s` bound the frames judged speech.
    `first_received_at` and `last_received_at` are the wall-clock arrival times of the bytes of the
    first and last speech frames.
    """

    pcm: np.ndarray
    start_s: float
    end_s: float
    first_received_at: float
    last_received_at: float
    speech_frames: int = 0
    forced_cut: bool = False
    speech_start_s: float = 0.0
    speech_end_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def first_sample(self) -> int:
        """Where `pcm` starts in the stream, in samples."""
        return round(self.start_s * SAMPLE_RATE)

    @property
    def rms(self) -> float:
        return frame_rms(self.pcm)


@dataclass
class _Frame:
    pcm: np.ndarray
    index: int
    received_at: float
    speech: bool


@dataclass
class Segmenter:
    """Turns a stream of classified 30 ms frames into speech segments.

    A segment opens after `start_frames` consecutive speech frames and includes up to `pre_roll_ms`
    of audio before them; it closes once `hang_over_ms` of consecutive non-speech frames have passed
    (the trailing silence is trimmed to a short tail), or when it reaches `max_segment_ms`.
    Segments with less than `min_speech_ms` of speech frames are dropped.
    """

    policy: VadPolicy = field(default_factory=VadPolicy)
    config: SegmenterConfig = field(default_factory=SegmenterConfig)
    noise_floor: NoiseFloor = field(default_factory=NoiseFloor)

    def __post_init__(self) -> None:
        self._early_offered = False
        self._pre: deque[_Frame] = deque(maxlen=self.config.frames(self.config.pre_roll_ms) + self.config.start_frames)
        self._active: list[_Frame] = []
        self._silence_run = 0
        self._speech_frames = 0
        self._frame_index = 0
        self._previous_sample = 0.0
        self._warmup = self.config.frames(self.config.warmup_ms) if self.config.warmup_ms else 0
        self.last_rms = 0.0

    def push_many(
        self, pcm: np.ndarray, voiced: list[bool], received_at: float, heard: list[bool] | None = None
    ) -> list[SpeechSegment]:
        """Feed consecutive frames at once (their energies are computed in one numpy pass). `heard`,
        when given, is the speech model's verdict on each frame (`SpeechTrack`), which a frame that
        would end a pause of `pause_gate_ms` needs as well as the VAD's."""
        rms, levels = frame_energies(pcm, self._previous_sample)
        segments = []
        for index, is_voiced in enumerate(voiced):
            frame = pcm[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]
            model_hears = heard[index] if heard is not None else True
            segment = self._push(frame, is_voiced, received_at, float(rms[index]), float(levels[index]), model_hears)
            if segment is not None:
                segments.append(segment)
        return segments

    def push(self, frame: np.ndarray, voiced: bool, received_at: float, heard: bool = True) -> SpeechSegment | None:
        """Feed one frame of FRAME_SAMPLES int16 samples with the detector's verdict (and the speech
        model's, `heard`: see `push_many`)."""
        return self._push(
            frame, voiced, received_at, frame_rms(frame), pre_emphasis_rms(frame, self._previous_sample), heard
        )

    def needs_heard(self, voiced: list[bool]) -> bool:
        """Whether any of these next frames could end a pause of `pause_gate_ms` (so the speech
        model's verdicts on them matter): a voiced frame that many frames or more into a pause,
        counting every frame before it in the batch as silence."""
        gate = self.config.pause_gate_ms
        if not gate:
            return False
        needed = self.config.frames(gate)
        run = self._silence_run if self._active else -self.config.start_frames
        return any(is_voiced and run + index >= needed for index, is_voiced in enumerate(voiced))

    def _push(
        self, frame: np.ndarray, voiced: bool, received_at: float, rms: float, level: float, heard: bool = True
    ) -> SpeechSegment | None:
        self._previous_sample = float(frame[-1]) if frame.size else self._previous_sample
        self.last_rms = rms
        # Until the floor has seen some of the room, a loud background would look like speech.
        warming_up = self._frame_index < self._warmup
        speech = voiced and not warming_up and self.policy.passes_energy(rms, self.noise_floor.level, level)
        if speech and not heard and self._pauses_past_gate():
            speech = False  # noise in a pause: the speech model does not hear a voice
        self.noise_floor.update(level)
        item = _Frame(frame, self._frame_index, received_at, speech)
        self._frame_index += 1
        if not self._active:
            self._pre.append(item)
            run = 0
            for previous in reversed(self._pre):
                if not previous.speech:
                    break
                run += 1
            if run >= self.config.start_frames:
                self._active = list(self._pre)
                self._pre.clear()
                self._speech_frames = run
                self._silence_run = 0
            return None
        self._active.append(item)
        if speech:
            self._speech_frames += 1
            self._silence_run = 0
            self._early_offered = False
        else:
            self._silence_run += 1
        if self._silence_run >= self.config.frames(self.config.hang_over_ms):
            return self._close(forced=False)
        if len(self._active) >= self.config.frames(self.config.max_segment_ms):
            return self._close(forced=True)
        return None

    def _pauses_past_gate(self) -> bool:
        gate = self.config.pause_gate_ms
        return bool(gate and self._active and self._silence_run >= self.config.frames(gate))

    def flush(self) -> SpeechSegment | None:
        """Close whatever is open at the end of the stream."""
        if not self._active:
            return None
        return self._close(forced=False)

    @property
    def in_speech(self) -> bool:
        return bool(self._active)

    @property
    def trailing_silence_ms(self) -> int:
        """Silence since the open segment's last speech frame (0 while speech goes on or none is open)."""
        return self._silence_run * FRAME_MS if self._active else 0

    @property
    def early_offer_ms(self) -> int:
        """Trailing silence at which `take_early` offers the open segment (0: never)."""
        return max(self.config.early_ms, TAIL_MS) if self.config.early_ms else 0

    def take_early(self) -> SpeechSegment | None:
        """The open segment as it will close if no speech comes back, once its trailing silence has
        reached `early_ms`; offered once per pause (None otherwise, or when it would be dropped).

        The hang-over must hear its whole silence before it can close a segment, but from TAIL_MS of
        silence on the closed segment's audio is already known: work on it (transcription) can start
        here and be used when the segment closes with the same `start_s` and `end_s`, or thrown
        away when speech comes back first.
        """
        early = self.early_offer_ms
        if not early or self._early_offered or not self._active or self._silence_run * FRAME_MS < early:
            return None
        self._early_offered = True
        if self._speech_frames * FRAME_MS < self.config.min_speech_ms:
            return None
        return self._segment(self._trim(self._active), self._speech_frames, forced=False)

    def _trim(self, frames: list[_Frame]) -> list[_Frame]:
        tail = min(self._silence_run, self.config.frames(TAIL_MS))
        return frames[: len(frames) - self._silence_run + tail] if self._silence_run else frames

    def _close(self, forced: bool) -> SpeechSegment | None:
        frames = self._active
        speech_frames = self._speech_frames
        self._active = []
        self._speech_frames = 0
        self._early_offered = False
        trimmed = self._trim(frames)
        self._silence_run = 0
        for leftover in frames[len(trimmed) :]:
            self._pre.append(leftover)
        if speech_frames * FRAME_MS < self.config.min_speech_ms:
            return None
        return self._segment(trimmed, speech_frames, forced)

    def _segment(self, trimmed: list[_Frame], speech_frames: int, forced: bool) -> SpeechSegment:
        first, last = trimmed[0], trimmed[-1]
        voiced = [f for f in trimmed if f.speech]
        first_speech, last_speech = (voiced[0], voiced[-1]) if voiced else (first, last)
        return SpeechSegment(
            pcm=np.concatenate([f.pcm for f in trimmed]),
            start_s=first.index * FRAME_MS / 1000,
            end_s=(last.index + 1) * FRAME_MS / 1000,
            first_received_at=first_speech.received_at,
            last_received_at=last_speech.received_at,
            speech_frames=speech_frames,
            forced_cut=forced,
            speech_start_s=first_speech.index * FRAME_MS / 1000,
            speech_end_s=(last_speech.index + 1) * FRAME_MS / 1000,
        )
