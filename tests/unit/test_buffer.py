"""The spec's buffer rules (section 2.4), each at its boundary."""

import pytest

from balto.domain.buffer import BufferAction, ConversationBuffer, TriggerReason


def words(n: int) -> str:
    return " ".join(f"palavra{i}" for i in range(n))


def fresh(at: float = 0.0) -> ConversationBuffer:
    return ConversationBuffer(created_at=at)


# Rule 1: accumulation, more than 10 words


def test_ten_words_wait_eleven_fire():
    buf = fresh()
    assert buf.offer(words(10), 1.0).action is BufferAction.WAIT
    buf = fresh()
    decision = buf.offer(words(11), 1.0)
    assert decision.fires and decision.reason is TriggerReason.ACCUMULATED


def test_words_accumulate_across_lines():
    buf = fresh()
    assert not buf.offer(words(6), 1.0).fires
    decision = buf.offer(words(5), 2.0)
    assert decision.fires and decision.reason is TriggerReason.ACCUMULATED
    assert buf.pending_words == 11


# Rule 2: time, more than 5 s without sending


def test_pending_text_fires_after_more_than_five_seconds_on_tick():
    buf = fresh()
    buf.offer(words(3), 10.0)
    assert buf.tick(15.0).action is BufferAction.WAIT  # exactly 5.0 s
    decision = buf.tick(15.01)
    assert decision.fires and decision.reason is TriggerReason.TIME


def test_time_rule_also_checked_when_new_text_arrives():
    buf = fresh()
    buf.offer(words(2), 10.0)
    decision = buf.offer(words(1), 15.01)  # 5.01 s after the pending text, 3 words in all
    assert decision.fires and decision.reason is TriggerReason.TIME


def test_tick_with_nothing_pending_never_fires():
    buf = fresh()
    assert buf.tick(100.0).action is BufferAction.WAIT


def test_time_is_counted_from_the_last_send_when_later_than_the_pending_text():
    buf = fresh()
    buf.offer(words(11), 1.0)
    buf.offer(words(2), 2.0)  # arrives while the first batch waits (e.g. the LLM was busy)
    buf.take(4.0)  # sent at 4.0, both lines went out
    buf.offer(words(2), 4.5)
    assert not buf.tick(9.5).fires  # 5.0 s after the pending line
    assert buf.tick(9.51).fires


def test_take_empties_the_buffer_and_restarts_the_clock():
    buf = fresh()
    buf.offer("um dois", 1.0)
    buf.offer("três", 2.0)
    lines = buf.take(3.0)
    assert [line.text for line in lines] == ["um dois", "três"]
    assert buf.pending == [] and buf.last_send_at == 3.0


# Rule 3: long gap, more than 45 s of silence and at most 2 words -> discard


def test_stray_ok_after_a_long_gap_is_discarded():
    buf = fresh()
    buf.offer(words(11), 0.0)
    buf.take(0.0)
    decision = buf.offer("Ok", 45.01)
    assert decision.action is BufferAction.DISCARD and decision.reason is TriggerReason.LONG_GAP
    assert buf.pending == []


def test_two_words_after_long_gap_discarded_three_not():
    buf = fresh()
    assert buf.offer(words(2), 50.0).action is BufferAction.DISCARD
    buf = fresh()
    decision = buf.offer(words(3), 50.0)
    # 3 words: not a stray word; not more than 3 either, so no resume: waits for the 5 s rule
    assert decision.action is BufferAction.WAIT


def test_exactly_45_seconds_is_not_a_long_gap():
    buf = fresh()
    buf.offer(words(11), 0.0)
    buf.take(0.0)
    decision = buf.offer("Ok", 45.0)
    assert decision.action is BufferAction.WAIT


def test_silence_before_the_first_text_counts_from_creation():
    buf = fresh(at=100.0)
    assert buf.offer("Ok", 145.0).action is BufferAction.WAIT
    buf = fresh(at=100.0)
    assert buf.offer("Ok", 145.01).action is BufferAction.DISCARD


def test_long_gap_counts_pending_words_including_the_new_line():
    # Text that was pending (the LLM was busy) plus the stray word exceeds 2 words: not discarded.
    buf = fresh()
    buf.offer(words(2), 0.0)
    decision = buf.offer("Ok", 50.0)
    assert decision.action is not BufferAction.DISCARD


# Rule 4: quick resume, more than 5 s of silence and more than 3 words -> send at once


def test_new_topic_after_a_pause_fires_immediately():
    buf = fresh()
    buf.offer(words(11), 0.0)
    buf.take(0.0)
    decision = buf.offer(words(4), 5.01)
    assert decision.fires and decision.reason is TriggerReason.RESUME


@pytest.mark.parametrize(
    ("silence", "n", "fires"),
    [(5.0, 4, False), (5.01, 4, True), (5.01, 3, False), (44.0, 4, True)],
)
def test_resume_boundaries(silence, n, fires):
    buf = fresh()
    buf.offer(words(11), 0.0)
    buf.take(0.0)
    decision = buf.offer(words(n), silence)
    assert decision.fires is fires
    if fires:
        assert decision.reason is TriggerReason.RESUME


def test_long_gap_wins_over_resume_and_resume_over_accumulation():
    buf = fresh()
    assert buf.offer(words(2), 60.0).action is BufferAction.DISCARD  # >45 s, 2 words
    buf = fresh()
    decision = buf.offer(words(12), 6.0)  # >5 s and >3 words AND >10 words
    assert decision.reason is TriggerReason.RESUME


def test_empty_text_is_a_tick():
    buf = fresh()
    assert buf.offer("   ", 100.0).action is BufferAction.WAIT
    assert buf.last_speech_end is None


def test_silence_is_measured_between_utterances_not_transcripts():
    # Speech ended at 10.0, the next utterance started at 11.0 (a 1 s pause), but its transcript only
    # arrived at 17.0: that is not a 7 s silence, so no "new topic".
    buf = fresh()
    buf.offer(words(11), 10.5, started_at=8.0, ended_at=10.0)
    buf.take(10.5)
    decision = buf.offer(words(4), 17.0, started_at=11.0, ended_at=16.0)
    assert decision.action is BufferAction.WAIT
    buf = fresh()
    buf.offer(words(11), 10.5, started_at=8.0, ended_at=10.0)
    buf.take(10.5)
    decision = buf.offer(words(4), 17.0, started_at=15.01, ended_at=16.0)
    assert decision.reason is TriggerReason.RESUME
