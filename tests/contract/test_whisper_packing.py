"""Local Whisper with packing on: segments that wait at once share one window, and each gets its own
words back, as close to what was said as when transcribed alone. And with an encoder window shorter
than Whisper's 30 s (STT_WINDOW_S): the same words, for less encoder work."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from balto.adapters import faster_whisper
from balto.adapters.faster_whisper import WhisperTranscriber
from balto.evaluation import wer
from tests.support.audio import counter_utterance, silence

pytestmark = pytest.mark.slow

utterance = counter_utterance


@pytest.fixture
async def packing(whisper_model):
    executor = ThreadPoolExecutor(1)
    packing = WhisperTranscriber(whisper_model, executor, language="pt", pack=True)
    yield packing
    await packing.aclose()
    executor.shutdown()


async def test_segments_waiting_together_share_a_window_and_keep_their_own_words(packing):
    (first, said_first), (second, said_second) = utterance(0), utterance(1)
    noise_only = silence(1.5)
    results = await asyncio.gather(
        packing.transcribe(first, "pt"), packing.transcribe(second, "pt"), packing.transcribe(noise_only, "pt")
    )
    assert packing.windows == 1 and packing.packed_segments == 3
    assert wer(said_first, results[0].text) <= 0.5, results[0].text
    assert wer(said_second, results[1].text) <= 0.5, results[1].text
    assert results[2].text == ""  # nothing said, nothing invented
    assert all(r.provider == "whisper" and r.latency_ms > 0 for r in results)


async def test_one_segment_alone_is_not_delayed_and_goes_alone(packing):
    pcm, said = utterance(0)
    result = await packing.transcribe(pcm, "pt")
    assert packing.windows == 1 and packing.packed_segments == 1
    assert wer(said, result.text) <= 0.5


async def test_a_caller_that_gives_up_does_not_stop_the_others(packing):
    (first, said_first), (second, _) = utterance(0), utterance(1)
    waiting = asyncio.ensure_future(packing.transcribe(second, "pt"))
    kept = asyncio.ensure_future(packing.transcribe(first, "pt"))
    await asyncio.sleep(0)
    waiting.cancel()
    result = await kept
    assert wer(said_first, result.text) <= 0.5


def test_a_short_window_pads_only_the_decodes_that_asked_for_it():
    features = np.ones((80, 420), dtype=np.float32)
    assert faster_whisper._pad_or_trim_to_window(features).shape == (80, 3000)  # no window asked: Whisper's
    faster_whisper._window.frames = 2000
    try:
        assert faster_whisper._pad_or_trim_to_window(features).shape == (80, 2000)
        long = np.ones((80, 2600), dtype=np.float32)
        assert faster_whisper._pad_or_trim_to_window(long).shape == (80, 2600)  # never cuts audio
        assert faster_whisper._pad_or_trim_to_window(np.ones((80, 3400))).shape == (80, 3000)
    finally:
        faster_whisper._window.frames = None


@pytest.mark.parametrize("pack", [False, True])
async def test_a_short_encoder_window_hears_the_same_words(whisper_model, pack, monkeypatch):
    """A segment transcribed alone (packing off, or on with nobody else waiting) gets the short window."""
    import faster_whisper.transcribe as fw

    executor = ThreadPoolExecutor(1)
    short = WhisperTranscriber(whisper_model, executor, language="pt", pack=pack, window_s=20.0)
    hook, encoded = fw.pad_or_trim, []

    def spy(array, length=3000, *, axis=-1):
        padded = hook(array, length, axis=axis)
        encoded.append(padded.shape[axis])
        return padded

    monkeypatch.setattr(fw, "pad_or_trim", spy)
    try:
        results = [await short.transcribe(utterance(i)[0], "pt") for i in (0, 1)]
        left = executor.submit(lambda: getattr(faster_whisper._window, "frames", None)).result()
    finally:
        await short.aclose()
        executor.shutdown()
    for (_, said), result in zip((utterance(0), utterance(1)), results, strict=True):
        assert wer(said, result.text) <= 0.5, result.text
    assert left is None  # the worker thread is left as found, for whoever decodes on it next
    assert encoded and set(encoded) == {2000}  # the encoder saw 20 s, not 30


def test_the_window_must_be_one_whisper_can_use(whisper_model):
    with pytest.raises(ValueError, match="5-30 s"):
        WhisperTranscriber(whisper_model, ThreadPoolExecutor(1), window_s=45.0)


async def test_a_packed_segment_left_without_words_is_heard_again_alone(packing, monkeypatch):
    """Whisper may skip a sentence inside a packed window; that segment is decoded again alone."""
    real_split = faster_whisper.split_packed_words

    def lose_the_second(words, spans):
        own = real_split(words, spans)
        return [own[0], [], *own[2:]]

    monkeypatch.setattr(faster_whisper, "split_packed_words", lose_the_second)
    (first, said_first), (second, said_second) = utterance(0), utterance(1)
    results = await asyncio.gather(packing.transcribe(first, "pt"), packing.transcribe(second, "pt"))
    assert packing.windows == 1 and packing.packed_segments == 2 and packing.redecoded == 1
    assert wer(said_first, results[0].text) <= 0.5, results[0].text
    assert wer(said_second, results[1].text) <= 0.5, results[1].text


async def test_a_worker_counts_as_busy_from_the_request_until_its_decode_ends(whisper_model):
    """What an early start asks before it takes a worker (LocalWorkers): decodes handed over and not
    finished, queued ones included; one cancelled before it started is given back at once."""
    executor = ThreadPoolExecutor(2)
    transcriber = WhisperTranscriber(whisper_model, executor, language="pt", workers=2)
    try:
        assert (transcriber.workers, transcriber.idle_workers()) == (2, 2)
        pcm, text = utterance(0)
        first = asyncio.create_task(transcriber.transcribe(pcm))
        await asyncio.sleep(0)
        assert transcriber.idle_workers() == 1
        second = asyncio.create_task(transcriber.transcribe(pcm))
        queued = asyncio.create_task(transcriber.transcribe(pcm))
        await asyncio.sleep(0)
        assert transcriber.idle_workers() == 0
        queued.cancel()
        results = await asyncio.gather(first, second)
        assert all(wer(text, r.text) <= 0.35 for r in results)
        assert transcriber.idle_workers() == 2
    finally:
        executor.shutdown()
