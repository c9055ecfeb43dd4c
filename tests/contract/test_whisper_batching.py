"""Local Whisper with batching on (STT_BATCH): segments of several counters that wait at once go
through Whisper's encoder one window at a time and its decoder as one batch, and each gets exactly
the words and the hallucination rules' signals it gets when decoded alone. A worker batches only
once the queue is behind (its oldest segment has waited as long as a decode takes, or
STT_BATCH_AFTER_MS), idle workers share what waits before any of them batches, a caller that gives
up is left out of the decoder, and what cannot share a batch (a segment longer than the encoder
window) is decoded alone."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from balto.adapters.faster_whisper import WhisperTranscriber
from balto.evaluation import wer
from tests.support.audio import counter_utterance, silence

pytestmark = pytest.mark.slow

utterance = counter_utterance


def assert_heard(said: list[str], results: list[Any]) -> None:
    """Whisper base's words for the fixture's synthetic voice, over all the segments of a test. They
    depend on the CPU's arithmetic: on the Intel Xeon measured one sentence of the two comes out with
    5 words of 8 wrong, decoded alone or in a batch. So the bar is the test's whole word error rate,
    which garbage (wrong features, a window cut wrong) still fails."""
    heard = " ".join(result.text for result in results)
    assert wer(" ".join(said), heard) <= 0.5, heard


class Recording:
    """CTranslate2's Whisper behind a proxy that records the batch size of each encoder and decoder
    call, and can hold the encoder."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.encoded: list[int] = []
        self.generated: list[int] = []
        self.encoding = threading.Event()
        self.go_on = threading.Event()
        self.go_on.set()

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        self.encoded.append(features.shape[0])
        self.encoding.set()
        self.go_on.wait(30)
        return self._real.encode(features, to_cpu=to_cpu)

    def generate(self, encoder_output: Any, prompts: list[list[int]], **options: Any) -> Any:
        self.generated.append(len(prompts))
        return self._real.generate(encoder_output, prompts, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def recording(whisper_model, monkeypatch) -> Recording:
    proxy = Recording(whisper_model.model)
    monkeypatch.setattr(whisper_model, "model", proxy)
    return proxy


class Pool:
    """A WhisperTranscriber on its own executor, closed (dispatchers, then threads) on leaving."""

    def __init__(self, model: Any, workers: int = 1, **options: Any) -> None:
        self.executor = ThreadPoolExecutor(workers)
        self.whisper = WhisperTranscriber(
            model, self.executor, language="pt", workers=workers, window_s=10.0, **options
        )

    async def __aenter__(self) -> WhisperTranscriber:
        return self.whisper

    async def __aexit__(self, *exc: object) -> None:
        await self.whisper.aclose()
        self.executor.shutdown()


async def test_segments_waiting_together_are_one_batch_and_each_gets_what_it_gets_alone(whisper_model, recording):
    segments = [utterance(0)[0], utterance(1)[0], silence(1.5)]
    batched: list[int] = []
    async with (
        Pool(whisper_model) as alone,
        Pool(whisper_model, batch=4, batch_after_s=0.0, on_batched=batched.append) as together,
    ):
        expected = [await alone.transcribe(pcm, "pt") for pcm in segments]  # faster-whisper's own path
        recording.encoded.clear()
        recording.generated.clear()
        results = await asyncio.gather(*(together.transcribe(pcm, "pt") for pcm in segments))
    assert (recording.encoded, recording.generated) == ([1, 1, 1], [3])  # the encoder one window at a time
    assert (together.batches, together.batched_segments, batched) == (1, 3, [3])
    assert [r.text for r in results] == [e.text for e in expected]
    assert [r.confidence for r in results] == pytest.approx([e.confidence for e in expected], abs=1e-4)
    assert results[2].text == ""  # nothing said, nothing invented
    assert_heard([utterance(0)[1], utterance(1)[1]], results[:2])
    assert all(r.provider == "whisper" and r.language == "pt" and r.latency_ms > 0 for r in results)


async def test_a_worker_batches_only_once_the_oldest_segment_has_waited_as_long_as_a_decode(whisper_model, recording):
    heard = [utterance(i) for i in (0, 1, 0)]
    timed: list[float] = []
    async with Pool(whisper_model, batch=4, on_timed=timed.append) as together:
        assert together.decode_s is None  # nothing decoded yet: nothing is late
        results = await asyncio.gather(*(together.transcribe(pcm, "pt") for pcm, _ in heard))
        # The first is heard alone at once; the other two waited through its decode, and go together.
        assert recording.generated == [1, 2] and (together.batches, together.batched_segments) == (1, 2)
        assert together.decode_s is not None and together.decode_s > 0
        assert timed == [together.decode_s]  # one lone decode timed (the batch is not), told to /metrics
    assert_heard([said for _, said in heard], results)


async def test_a_queue_one_decode_behind_is_heard_two_at_a_time(whisper_model, recording):
    async with Pool(whisper_model, batch=4, batch_after_s=30.0) as together:
        # Four segments that have waited 1.5 decodes (30 s each, here): a batch of two, then two.
        requests = [asyncio.ensure_future(together.transcribe(utterance(i % 2)[0], "pt")) for i in range(4)]
        await asyncio.sleep(0)
        for request in together._pending:
            request.queued_at -= 45.0
        await asyncio.gather(*requests)
    assert recording.generated == [2, 2] and together.batches == 2


async def test_with_a_longer_wait_set_a_queue_that_is_not_that_late_is_heard_one_at_a_time(whisper_model, recording):
    async with Pool(whisper_model, batch=4, batch_after_s=60.0) as together:
        await asyncio.gather(*(together.transcribe(utterance(i)[0], "pt") for i in (0, 1, 0)))
    assert recording.encoded == [1, 1, 1] and together.batches == 0


async def test_idle_workers_share_what_waits_before_any_of_them_batches(whisper_model, recording):
    async with Pool(whisper_model, workers=2, batch=4) as together:
        results = await asyncio.gather(*(together.transcribe(utterance(i)[0], "pt") for i in (0, 1)))
    assert recording.encoded == [1, 1] and together.batches == 0
    assert_heard([utterance(0)[1], utterance(1)[1]], results)


@pytest.mark.parametrize("gives_up", ["first", "second"])
async def test_a_caller_that_gives_up_while_the_batch_encodes_is_left_out_of_the_decoder(
    whisper_model, recording, gives_up
):
    """The encoder is held on the batch's first window while one caller gives up: the first, whose
    window is then encoded already, or the second, whose window is not encoded at all."""
    stopped: list[int] = []
    recording.go_on.clear()
    try:
        async with Pool(whisper_model, batch=4, batch_after_s=0.0, on_stopped=lambda: stopped.append(1)) as together:
            (kept_pcm, said), (dropped_pcm, _) = utterance(0), utterance(1)
            order = [kept_pcm, dropped_pcm] if gives_up == "second" else [dropped_pcm, kept_pcm]
            first, second = (asyncio.ensure_future(together.transcribe(pcm, "pt")) for pcm in order)
            kept, dropped = (first, second) if gives_up == "second" else (second, first)
            assert await asyncio.to_thread(recording.encoding.wait, 30)
            dropped.cancel()
            await asyncio.sleep(0)
            recording.go_on.set()
            result = await kept
            with pytest.raises(asyncio.CancelledError):
                await dropped
    finally:
        recording.go_on.set()
    assert (recording.encoded, recording.generated) == ([1] if gives_up == "second" else [1, 1], [1])
    assert (together.batches, together.stopped, stopped) == (1, 1, [1])  # one batch of two, one stopped
    assert wer(said, result.text) <= 0.5, result.text


async def test_a_segment_longer_than_the_encoder_window_is_decoded_alone(whisper_model, recording):
    (first, said_first), (second, said_second) = utterance(0), utterance(1)
    long = np.concatenate([first, silence(0.5), second])  # about 10.5 s: over the 10 s window
    async with Pool(whisper_model, batch=4) as together:
        results = await asyncio.gather(together.transcribe(long, "pt"), together.transcribe(first, "pt"))
    assert recording.encoded == [1, 1] and together.batches == 0  # each alone, the long one first
    assert wer(f"{said_first} {said_second}", results[0].text) <= 0.5, results[0].text
    assert wer(said_first, results[1].text) <= 0.5, results[1].text


async def test_closing_stops_the_dispatchers_and_cancels_who_still_waits(whisper_model):
    async with Pool(whisper_model, batch=4) as together:
        await together.transcribe(utterance(0)[0], "pt")
        dispatchers = list(together._dispatchers)
    assert dispatchers and all(task.done() for task in dispatchers)


def test_a_batch_holds_at_least_one_segment(whisper_model):
    with pytest.raises(ValueError, match="at least one"):
        WhisperTranscriber(whisper_model, ThreadPoolExecutor(1), batch=0)


def test_the_wait_before_batching_cannot_be_negative(whisper_model):
    with pytest.raises(ValueError, match="negative"):
        WhisperTranscriber(whisper_model, ThreadPoolExecutor(1), batch=4, batch_after_s=-0.1)
