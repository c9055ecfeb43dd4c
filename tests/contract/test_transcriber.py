"""Transcriber contract: the scripted fake and local faster-whisper, on the committed speech fixture."""

from __future__ import annotations

import asyncio
import time

import pytest

from balto.evaluation import wer
from tests.fakes import FakeTranscriber
from tests.support.audio import FIXTURES, fixture_manifest, read_wav

MANIFEST = fixture_manifest()["balcao_pt.wav"]


def utterance(index: int):
    pcm = read_wav(FIXTURES / "balcao_pt.wav")
    u = MANIFEST["utterances"][index]
    start, end = int((u["start_s"] - 0.25) * 16_000), int((u["end_s"] + 0.25) * 16_000)
    return pcm[start:end], u["text"]


@pytest.fixture(params=["fake", "whisper"])
def transcriber(request):
    if request.param == "fake":
        return FakeTranscriber(lambda pcm: next(u["text"] for u in MANIFEST["utterances"]))
    return request.getfixturevalue("whisper")


@pytest.mark.slow
async def test_speech_is_transcribed_close_to_what_was_said(transcriber):
    pcm, text = utterance(0)
    transcript = await transcriber.transcribe(pcm, "pt")
    assert transcript.provider == transcriber.name
    assert transcript.latency_ms is not None and transcript.latency_ms >= 0
    # espeak-ng's synthetic Portuguese is hard for Whisper base; real speech is held to 0.30 end to end.
    assert wer(text, transcript.text) <= 0.5, transcript.text


@pytest.mark.slow
async def test_transcription_does_not_block_the_event_loop(transcriber):
    pcm, _ = utterance(1)
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat():
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    await transcriber.transcribe(pcm, "pt")
    await asyncio.sleep(0.02)
    done.set()
    await beat
    assert gaps and max(gaps) < 0.25
