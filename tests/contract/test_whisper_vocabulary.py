"""Local Whisper over Portuguese tokens only (STT_VOCABULARY=auto): the packaged model's restricted
copy is written once and reused, loads in CTranslate2, and a segment is heard through it, with the
same words batched or alone; a segment of another language goes through the whole model. (Whether
the copy hears as well as the whole vocabulary is measured on real speech: bench/vocabulary.py and
docs/performance.md, item 21.)"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from balto.adapters.faster_whisper import WhisperTranscriber, resolve_model_path
from balto.adapters.whisper_vocabulary import (
    MULTILINGUAL_VOCABULARY,
    load_restricted_whisper,
    restricted_model,
    shipped_list,
)
from balto.evaluation import wer
from tests.support.audio import FIXTURES, counter_utterance, read_wav, silence

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def restricted(whisper_model, model_cache):
    return load_restricted_whisper(Path(resolve_model_path("base", model_cache)), model_cache, "pt", "int8", 2, 1)


@pytest.fixture(autouse=True)
def whole_model_loaded_after(whisper_model):
    """A transcriber with the copy lets the shared model's weights go; the session's other tests
    find them loaded, as the transcribers that need them would load them again anyway."""
    yield
    if not whisper_model.model.model_is_loaded:
        whisper_model.model.load_model()


class Counting:
    """A CTranslate2 Whisper that counts its decoder calls."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.generated = 0

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.generated += 1
        return self._real.generate(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_the_copy_is_written_once_and_holds_the_lists_tokens(restricted, model_cache):
    model_dir = Path(resolve_model_path("base", model_cache))
    path, vocabulary = restricted_model(model_dir, model_cache, "pt", shipped_list("pt"))
    written = (path / "model.bin").stat().st_mtime_ns
    again, _ = restricted_model(model_dir, model_cache, "pt", shipped_list("pt"))
    assert again == path and (path / "model.bin").stat().st_mtime_ns == written
    assert vocabulary.size == restricted.vocabulary.size < MULTILINGUAL_VOCABULARY / 2
    assert (path / "model.bin").stat().st_size < (model_dir / "model.bin").stat().st_size
    assert not list(model_cache.glob("*.partial"))


async def test_a_segment_is_heard_over_the_languages_tokens_alone_or_batched(whisper_model, restricted):
    counting = Counting(restricted.model)
    said = [counter_utterance(0), counter_utterance(1), (read_wav(FIXTURES / "bom_dia.wav"), "Bom dia.")]
    segments = [pcm for pcm, _ in said]
    with ThreadPoolExecutor(2) as executor:
        over_pt = WhisperTranscriber(
            whisper_model,
            executor,
            language="pt",
            beam_size=5,
            window_s=10.0,
            restricted=type(restricted)(restricted.vocabulary, counting),
        )
        heard = [(await over_pt.transcribe(pcm)).text for pcm in segments]
        assert counting.generated == len(segments)  # every one went through the copy
        # Whisper's words for the fixture's synthetic voice depend on the CPU's arithmetic (see
        # test_whisper_batching.py); an id mapped wrong would make garbage of every one.
        assert wer(" ".join(text for _, text in said), " ".join(heard)) <= 0.5, heard

        # Batched: the copy's decoder takes all three at once, and each gets the words it got alone.
        batched = WhisperTranscriber(
            whisper_model,
            executor,
            language="pt",
            beam_size=5,
            window_s=10.0,
            batch=4,
            batch_after_s=0.0,
            workers=1,
            restricted=restricted,
        )
        try:
            results = await asyncio.gather(*(batched.transcribe(pcm) for pcm in segments))
        finally:
            await batched.aclose()
        assert [r.text for r in results] == heard


async def test_a_segment_of_another_language_goes_through_the_whole_model_loaded_again(whisper_model, restricted):
    counting = Counting(restricted.model)
    pcm, _ = counter_utterance(0)
    with ThreadPoolExecutor(1) as executor:
        over_pt = type(restricted)(restricted.vocabulary, counting)
        transcriber = WhisperTranscriber(whisper_model, executor, language="pt", window_s=10.0, restricted=over_pt)
        assert not whisper_model.model.model_is_loaded  # its weights let go: the copy takes Portuguese
        transcript = await transcriber.transcribe(pcm, language="es")
        await transcriber.aclose()
    assert counting.generated == 0 and transcript.language == "es"
    assert whisper_model.model.model_is_loaded


@pytest.mark.parametrize("batch", [1, 4])
async def test_a_segment_longer_than_the_window_goes_through_the_copy_in_a_window_of_its_own(
    whisper_model, restricted, batch
):
    (first, said_first), (second, said_second) = counter_utterance(0), counter_utterance(1)
    pcm = np.concatenate([first, silence(5.0), second])  # about 12 s: longer than the 10 s window
    counting = Counting(restricted.model)
    with ThreadPoolExecutor(1) as executor:
        over_pt = type(restricted)(restricted.vocabulary, counting)
        transcriber = WhisperTranscriber(
            whisper_model, executor, language="pt", beam_size=5, window_s=10.0, batch=batch, restricted=over_pt
        )
        try:
            transcript = await transcriber.transcribe(pcm)
        finally:
            await transcriber.aclose()
    assert pcm.size > 10 * 16_000 and counting.generated == 1
    assert not whisper_model.model.model_is_loaded  # the whole model was not needed
    # Both sentences: the window took the whole segment, not its first 10 s.
    assert wer(f"{said_first} {said_second}", transcript.text) <= 0.5, transcript.text
