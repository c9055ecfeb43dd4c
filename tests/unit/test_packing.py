"""Packing several segments into one Whisper window, and giving each its words back."""

from balto.domain.transcription import PackedWord, pack_offsets, split_packed_words


def test_segments_are_laid_end_to_end_with_a_gap_while_they_fit():
    assert pack_offsets([3.0, 2.0, 4.0], gap_s=1.0, max_s=28.0) == [0.0, 4.0, 7.0]
    assert pack_offsets([10.0, 10.0, 10.0], gap_s=1.0, max_s=28.0) == [0.0, 11.0]  # the third would end at 32
    assert pack_offsets([27.0, 0.5], gap_s=1.0, max_s=28.0) == [0.0]  # 28.0 + 0.5 > 28


def test_a_segment_longer_than_the_window_still_goes_alone():
    assert pack_offsets([40.0, 1.0]) == [0.0]
    assert pack_offsets([]) == []


def word(text, start, end):
    return PackedWord(text, start, end, 0)


def test_words_go_to_the_span_holding_their_middle_or_the_nearest_one():
    spans = [(0.0, 3.0), (4.0, 6.0), (7.0, 9.0)]
    words = [
        word(" bom", 0.1, 0.4),
        word(" dia", 2.8, 3.3),  # middle 3.05: in the gap, nearest to the first span
        word(" tem", 3.9, 4.3),
        word(" dipirona", 8.0, 8.9),
    ]
    out = split_packed_words(words, spans)
    assert ["".join(w.text for w in group) for group in out] == [" bom dia", " tem", " dipirona"]


def test_a_span_with_no_words_gets_nothing():
    assert split_packed_words([word(" sim", 0.2, 0.5)], [(0.0, 1.0), (2.0, 3.0)]) == [[word(" sim", 0.2, 0.5)], []]
