"""Live word error rate on real Portuguese speech with cafe noise, streamed through /ws."""

from __future__ import annotations

import pytest

from balto.app.replay import replay
from balto.evaluation import wer
from tests.support.audio import real_audio_dir, write_wav
from tests.support.conversation import build_conversation

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AUDIO = real_audio_dir()


@pytest.mark.skipif(AUDIO is None, reason="../shared/audio (or BALTO_REAL_AUDIO_DIR) is not present on this machine")
async def test_live_wer_on_real_speech_with_cafe_noise_at_20db(server, openai_stub, tmp_path):
    assert AUDIO is not None
    conversation = build_conversation(seed=7, source="real", noise="blanket_coffee-shop.wav", snr_db=20.0)
    path = write_wav(tmp_path / "conversa.wav", conversation.pcm)
    messages = await replay(path, server.key, server.url, speed=0)
    heard = " ".join(m["texto"] for m in messages if m.get("comando") == "transcricao")
    error = wer(conversation.text, heard)
    print(f"\nlive WER {error:.3f} over {len(conversation.transcripts)} sentences\nheard: {heard}")
    assert error <= 0.30
