from dataclasses import replace

import numpy as np
import pytest

from balto.domain.vad import (
    FRAME_MS,
    FRAME_SAMPLES,
    EarlyStartTiming,
    NoiseFloor,
    Segmenter,
    SegmenterConfig,
    SpeechTrack,
    VadPolicy,
)

# Speech energy is not flat: syllables rise and fall, with dips between them. The noise floor is a
# low percentile of recent frames, so a test signal must dip as real speech does.
SYLLABLE = (1.0, 1.4, 0.85, 1.25, 0.25)


def frames(pattern: str, loud: int = 3000, quiet: int = 0, flat: bool = False) -> list[tuple[np.ndarray, bool]]:
    """'s' = a speech frame (voiced, loud, following a syllable envelope), '.' = silence; 30 ms each."""
    out = []
    # A 500 Hz tone (a whole number of periods per frame) at the given RMS: energy where voices have it.
    wave = np.sqrt(2) * np.sin(2 * np.pi * 500 * np.arange(FRAME_SAMPLES) / 16_000)
    for i, ch in enumerate(pattern):
        gain = 1.0 if flat else SYLLABLE[i % len(SYLLABLE)]
        level = loud * gain if ch == "s" else quiet
        out.append((np.round(wave * level).astype(np.int16), ch == "s"))
    return out


def run(segmenter: Segmenter, pattern: str, **kw):
    segments = []
    for i, (frame, voiced) in enumerate(frames(pattern, **kw)):
        seg = segmenter.push(frame, voiced, received_at=1000.0 + i * FRAME_MS / 1000)
        if seg:
            segments.append(seg)
    tail = segmenter.flush()
    if tail:
        segments.append(tail)
    return segments


CONFIG = SegmenterConfig(
    pre_roll_ms=90, hang_over_ms=150, min_speech_ms=150, max_segment_ms=3000, start_frames=3, warmup_ms=0
)


def test_a_sentence_becomes_one_segment_with_pre_roll_and_short_tail():
    seg = Segmenter(config=CONFIG)
    (segment,) = run(seg, "." * 10 + "s" * 20 + "." * 10)
    # speech frames 10..29; pre-roll of 3 frames; tail keeps up to 120 ms (4 frames) of the 5-frame hang-over
    assert segment.start_s == 7 * 0.03
    assert round(segment.end_s, 3) == round(34 * 0.03, 3)
    assert segment.speech_frames == 20


def test_short_pause_does_not_cut_but_a_long_one_does():
    seg = Segmenter(config=CONFIG)
    assert len(run(seg, "." * 10 + "s" * 10 + "...." + "s" * 10 + "." * 10)) == 1  # 4 frames < 5 of hang-over
    seg = Segmenter(config=CONFIG)
    assert len(run(seg, "." * 10 + "s" * 10 + "......" + "s" * 10 + "." * 10)) == 2


def test_clicks_shorter_than_min_speech_are_dropped():
    seg = Segmenter(config=CONFIG)
    assert run(seg, "." * 5 + "ssss" + "." * 20) == []  # 4 frames = 120 ms < 150 ms
    seg = Segmenter(config=CONFIG)
    assert len(run(seg, "." * 5 + "sssss" + "." * 20)) == 1


def test_isolated_blips_do_not_open_a_segment():
    seg = Segmenter(config=CONFIG)
    assert run(seg, ".s.s.ss." * 10) == []


def test_monologue_is_cut_at_max_segment():
    seg = Segmenter(config=CONFIG)
    segments = run(seg, "." * 10 + "s" * 250)  # 7.5 s of uninterrupted speech, max 3 s
    assert len(segments) == 3
    assert all(s.duration_s <= 3.0 + 1e-9 for s in segments)
    assert segments[0].forced_cut and segments[1].forced_cut


def test_receive_times_follow_the_frames():
    seg = Segmenter(config=CONFIG)
    (segment,) = run(seg, "." * 10 + "s" * 20 + "." * 10)
    assert segment.first_received_at == 1000.0 + 10 * 0.03  # the first speech frame's bytes
    assert (segment.speech_start_s, round(segment.speech_end_s, 3)) == (0.3, 0.9)
    assert segment.last_received_at > segment.first_received_at


def test_energy_gate_rejects_voiced_frames_below_min_energy():
    seg = Segmenter(policy=VadPolicy(min_energy=600.0), config=CONFIG)
    assert run(seg, "." * 30 + "s" * 30 + "." * 10, loud=400) == []  # syllable peaks reach 560
    seg = Segmenter(policy=VadPolicy(min_energy=300.0), config=CONFIG)
    assert len(run(seg, "." * 30 + "s" * 30 + "." * 10, loud=400)) == 1


def test_noise_floor_follows_the_room_and_threshold_multiplier_applies_to_it():
    # A constant hum at 1000 RMS that the detector calls voiced: 1.5x the floor is 1500, so speech at
    # 2000 passes and the hum alone never opens a segment once the floor has learnt it.
    seg = Segmenter(policy=VadPolicy(threshold_multiplier=1.5), config=CONFIG)
    segments = run(seg, "s" * 200, loud=1000, flat=True)
    assert sum(s.duration_s for s in segments) < 0.5  # only the first frames, before the floor learns


def test_no_segment_opens_while_the_floor_is_warming_up():
    config = SegmenterConfig(pre_roll_ms=90, hang_over_ms=150, min_speech_ms=150, warmup_ms=300)
    (segment,) = run(Segmenter(config=config), "s" * 30 + "." * 10)
    assert segment.speech_start_s == 0.3  # the first 10 frames only fed the floor


def test_noise_floor_is_a_low_percentile_of_recent_frames():
    floor = NoiseFloor(window_frames=10, percentile=20)
    for value in [100, 100, 100, 100, 100, 5000, 5000, 5000, 5000, 5000]:
        floor.update(value)
    assert floor.level == 100
    for value in [300] * 10:
        floor.update(value)
    assert floor.level == 300


EARLY = SegmenterConfig(
    pre_roll_ms=90, hang_over_ms=450, min_speech_ms=150, max_segment_ms=3000, start_frames=3, warmup_ms=0, early_ms=150
)


def feed(segmenter: Segmenter, pattern: str, start: int = 0) -> tuple[list, list]:
    """Frames one by one; after each, what closed and what was offered early. Besides `frames`' 's'
    and '.', 'n' is noise: a frame the VAD hears as speech that the speech model does not."""
    closed, early = [], []
    for i, ((frame, voiced), ch) in enumerate(zip(frames(pattern.replace("n", "s")), pattern, strict=True), start):
        seg = segmenter.push(frame, voiced, received_at=1000.0 + i * FRAME_MS / 1000, heard=ch != "n")
        if seg is not None:
            closed.append((i, seg))
        if (offer := segmenter.take_early()) is not None:
            early.append((i, offer))
    return closed, early


def test_the_early_segment_is_the_closed_segment_offered_a_hang_over_sooner():
    seg = Segmenter(config=EARLY)
    closed, early = feed(seg, "." * 10 + "s" * 20 + "." * 20)
    ((closed_at, segment),) = closed
    ((offered_at, offer),) = early
    assert offered_at == 29 + 5  # the 5th silent frame (150 ms)
    assert closed_at == 29 + 15  # the 15th (450 ms)
    assert (offer.start_s, offer.end_s, offer.speech_frames) == (segment.start_s, segment.end_s, segment.speech_frames)
    assert np.array_equal(offer.pcm, segment.pcm)
    assert offer.last_received_at == segment.last_received_at


def test_speech_that_comes_back_makes_a_new_offer_for_the_longer_segment():
    seg = Segmenter(config=EARLY)
    closed, early = feed(seg, "." * 10 + "s" * 10 + "." * 8 + "s" * 10 + "." * 20)
    ((_, segment),) = closed  # 240 ms of pause is under the hang-over: one segment
    assert len(early) == 2
    first, second = early[0][1], early[1][1]
    assert first.end_s < second.end_s == segment.end_s
    assert np.array_equal(second.pcm, segment.pcm)
    assert seg.trailing_silence_ms == 0  # nothing open any more


def test_trailing_silence_tells_whether_speech_came_back():
    seg = Segmenter(config=EARLY)
    feed(seg, "." * 10 + "s" * 10 + "." * 6)
    assert seg.trailing_silence_ms == 6 * FRAME_MS
    feed(seg, "s", start=26)
    assert seg.trailing_silence_ms == 0


def test_the_early_start_waits_until_the_measured_hearing_would_end_at_the_close():
    timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150)
    assert timing.start_ms == 150  # nothing timed yet: at the offer
    assert timing.due(150, 90) and not timing.due(90, 90)
    for seconds in (0.18, 0.20, 0.22):
        timing.observe(seconds)
    assert timing.start_ms == 250  # the hang-over minus the median hearing
    assert not timing.due(150, 90)  # the piece after this one is nearer the start
    assert timing.due(210, 90)  # 255 ms: the piece nearest the start
    for _ in range(6):
        timing.observe(0.01)  # hearings far faster than the hang-over
    assert timing.start_ms == 440
    assert timing.due(390, 90) and not timing.due(300, 90)  # at the latest, the last piece before the close


def test_the_early_start_never_comes_before_the_offer():
    timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150)
    timing.observe(1.5)  # slower than the whole hang-over
    assert timing.start_ms == 150
    timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150, window=2)
    for seconds in (1.5, 0.1, 0.1):  # only the last `window` count
        timing.observe(seconds)
    assert timing.start_ms == 350


def test_a_scaled_timing_starts_that_many_medians_before_the_close():
    timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150, scale=1.5)
    timing.observe(0.1)
    assert timing.start_ms == 300  # 450 - 1.5 x 100 ms
    timing.observe(0.3)
    assert timing.start_ms == 150  # the median (200 ms) x 1.5 leaves no time after the offer


def test_no_early_offer_when_off_or_for_a_click_that_will_be_dropped():
    off = Segmenter(config=replace(EARLY, early_ms=0))
    assert feed(off, "." * 10 + "s" * 20 + "." * 20)[1] == []
    click = Segmenter(config=EARLY)
    closed, early = feed(click, "." * 10 + "ssss" + "." * 20)  # 120 ms < min_speech_ms
    assert closed == [] and early == []


# -- the pause gate: a speech model's verdict on a frame that would end a pause ---------------------


def test_noise_in_a_pause_neither_keeps_the_segment_open_nor_breaks_the_early_offer():
    seg = Segmenter(config=EARLY)
    closed, early = feed(seg, "." * 10 + "s" * 20 + "." * 6 + "n" * 4 + "." * 20)
    ((closed_at, segment),) = closed
    ((_, offer),) = early
    assert closed_at == 29 + 15  # the hang-over counts the noise as silence: closed on time
    assert (offer.start_s, offer.end_s) == (segment.start_s, segment.end_s)  # the early hearing is the one kept
    assert np.array_equal(offer.pcm, segment.pcm)


def test_without_the_gate_the_same_noise_keeps_the_segment_open_and_breaks_the_offer():
    seg = Segmenter(config=replace(EARLY, pause_gate_ms=0))
    closed, early = feed(seg, "." * 10 + "s" * 20 + "." * 6 + "n" * 4 + "." * 20)
    ((closed_at, segment),) = closed
    assert closed_at == 39 + 15  # 450 ms after the noise
    assert len(early) == 2 and early[0][1].end_s < segment.end_s == early[1][1].end_s


def test_a_voice_the_model_hears_still_ends_the_pause():
    seg = Segmenter(config=EARLY)
    closed, early = feed(seg, "." * 10 + "s" * 10 + "." * 6 + "s" * 10 + "." * 20)
    ((_, segment),) = closed  # one segment: the speech after the pause belongs to it
    assert len(early) == 2 and early[1][1].end_s == segment.end_s
    assert segment.speech_frames == 20


def test_the_model_is_not_asked_inside_a_short_gap():
    # 90 ms between words is under the gate's 120 ms: the VAD alone decides, even against the model
    seg = Segmenter(config=EARLY)
    closed, _ = feed(seg, "." * 10 + "s" * 10 + "..." + "n" * 10 + "." * 20)
    ((_, segment),) = closed
    assert segment.speech_frames == 20


def test_needs_heard_only_for_a_voiced_frame_that_far_into_a_pause():
    seg = Segmenter(config=EARLY)  # gate at 120 ms: 4 frames
    assert not seg.needs_heard([True] * 3)  # nothing open: a segment opens first
    assert seg.needs_heard([False, True, True, False, False, False, False, True])  # opens, pauses, voiced again
    feed(seg, "." * 10 + "s" * 10 + "..")
    assert not seg.needs_heard([True, True])  # a 60 ms gap, then at most 90 ms
    assert seg.needs_heard([False, False, True])  # the third frame would be 120 ms in
    assert seg.needs_heard([True, True, True])  # so would this one, if the energy gate turned the first two down
    assert not seg.needs_heard([False, False, False])
    assert not Segmenter(config=replace(EARLY, pause_gate_ms=0)).needs_heard([False] * 10 + [True])


def test_a_speech_track_reads_each_frame_from_the_windows_over_it():
    track = SpeechTrack(window_samples=512, threshold=0.5)
    assert track.heard(0, 2) == [True, True]  # nothing heard yet: the VAD is trusted
    track.extend(np.array([0.1, 0.9, 0.2]))  # samples 0-1535
    # frame 0 (0-479) lies in window 0; frame 1 (480-959) in windows 0 and 1; frame 2 (960-1439) in window 1
    assert track.heard(0, 3) == [False, True, True]
    # frame 3 (1440-1919) overlaps window 2 and window 3, which is not complete: window 2 alone
    assert track.heard(1440, 1) == [False]
    # frames past every complete window: the latest one
    assert track.heard(4800, 2) == [False, False]
    track.extend(np.array([0.7]))
    assert track.heard(1440, 1) == [True]
    assert track.windows == 4


def test_a_speech_track_keeps_only_recent_windows():
    track = SpeechTrack(window_samples=512, threshold=0.5, keep=2)
    track.extend(np.array([0.9, 0.9, 0.1, 0.1]))
    assert track.heard(0, 1) == [False]  # windows 0 and 1 were let go: the oldest kept stands in


def test_a_speech_track_hands_back_the_probabilities_over_a_span():
    track = SpeechTrack(window_samples=512, threshold=0.5, keep=4)
    assert track.probabilities(0, 512) is None  # nothing complete yet
    track.extend(np.array([0.1, 0.2, 0.3]))
    assert track.probabilities(0, 512).tolist() == pytest.approx([0.1])
    assert track.probabilities(500, 1100).tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert track.probabilities(1024, 4000).tolist() == pytest.approx([0.3])  # the complete windows only
    assert track.probabilities(2000, 2100) is None  # window 3 is not complete
    track.extend(np.array([0.4, 0.5, 0.6]))  # wraps the ring: windows 2-5 are kept
    assert track.probabilities(1024, 3072).tolist() == pytest.approx([0.3, 0.4, 0.5, 0.6])
    assert track.probabilities(1000, 2000) is None  # window 1 was let go
    assert track.heard(2560, 1) == [True] and track.heard(1536, 1) == [False]
    track.extend(np.arange(10) / 10)  # more than it keeps, in one call: the last four
    assert track.windows == 16
    assert track.probabilities(12 * 512, 16 * 512).tolist() == pytest.approx([0.6, 0.7, 0.8, 0.9])
    with pytest.raises(ValueError):
        SpeechTrack(window_samples=512, threshold=0.5, keep=0)
