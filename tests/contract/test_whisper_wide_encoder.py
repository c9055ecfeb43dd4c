"""Local Whisper with a wide encoder (STT_ENCODER_THREADS): a decode that starts while no other one is
on a worker runs Whisper's encoder on every core, through a second instance of the same model, and
gets exactly the words it gets on its own worker's one thread; a decode that starts while another is
on a worker keeps to its own thread. Both on the batching path (the default) and on faster-whisper's
own path (STT_BATCH=1)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from balto.adapters.faster_whisper import WhisperTranscriber, load_wide_encoder
from balto.evaluation import wer
from tests.contract.test_whisper_batching import Recording
from tests.support.audio import counter_utterance

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> Any:
    return load_wide_encoder("base", tmp_path_factory.mktemp("models"), "int8", threads=2)


@pytest.fixture
def own(whisper_model, monkeypatch) -> Recording:
    proxy = Recording(whisper_model.model)
    monkeypatch.setattr(whisper_model, "model", proxy)
    return proxy


@pytest.fixture
def wide(wide_model) -> Recording:
    return Recording(wide_model)


class Pool:
    def __init__(self, model: Any, workers: int, **options: Any) -> None:
        self.executor = ThreadPoolExecutor(workers)
        self.whisper = WhisperTranscriber(
            model, self.executor, language="pt", workers=workers, window_s=10.0, beam_size=5, **options
        )

    async def __aenter__(self) -> WhisperTranscriber:
        return self.whisper

    async def __aexit__(self, *exc: object) -> None:
        await self.whisper.aclose()
        self.executor.shutdown()


@pytest.mark.parametrize("batch", [4, 1], ids=["batching path", "faster-whisper's path"])
async def test_a_decode_alone_encodes_on_every_core_and_gets_the_same_words(whisper_model, own, wide, batch):
    pcm, said = counter_utterance(0)
    told: list[int] = []
    async with (
        Pool(whisper_model, workers=2, batch=batch) as narrow,
        Pool(whisper_model, workers=2, batch=batch, wide_encoder=wide, on_wide=lambda: told.append(1)) as widened,
    ):
        expected = await narrow.transcribe(pcm, "pt")
        assert (own.encoded, wide.encoded) == ([1], [])
        result = await widened.transcribe(pcm, "pt")
    assert (own.encoded, wide.encoded) == ([1], [1])
    assert (widened.wide_encodes, told, narrow.wide_encodes) == (1, [1], 0)
    assert result.text == expected.text and wer(said, result.text) <= 0.5, result.text
    assert result.confidence == pytest.approx(expected.confidence, abs=1e-4)


async def test_a_decode_that_starts_beside_another_keeps_to_its_own_thread(whisper_model, own, wide):
    (first, said_first), (second, said_second) = counter_utterance(0), counter_utterance(1)
    wide.go_on.clear()  # the first decode holds the wide encoder until the second has started
    try:
        async with Pool(whisper_model, workers=2, batch=4, wide_encoder=wide) as whisper:
            heard_first = asyncio.ensure_future(whisper.transcribe(first, "pt"))
            assert await asyncio.to_thread(wide.encoding.wait, 30)
            heard_second = asyncio.ensure_future(whisper.transcribe(second, "pt"))
            assert await asyncio.to_thread(own.encoding.wait, 30)
            wide.go_on.set()
            results = await asyncio.gather(heard_first, heard_second)
    finally:
        wide.go_on.set()
    assert (wide.encoded, own.encoded, whisper.wide_encodes) == ([1], [1], 1)
    assert wer(said_first, results[0].text) <= 0.5, results[0].text
    assert wer(said_second, results[1].text) <= 0.5, results[1].text
