"""SpeakerEmbedder contract: the fake, Resemblyzer and SpeechBrain (where it can be imported) alike."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from balto.domain.speaker import EmbeddingError, cosine
from tests.fakes import FakeSpeakerEmbedder
from tests.support.speakers import (
    reference_ecapa_embedding,
    speechbrain_unavailable,
    voice,
    write_speechbrain_checkpoint,
)

# Voices of the committed fixtures that are enrolled, and one that never is.
VOICES = ("voz_d", "voz_e", "voz_h")
STRANGER = "voz_j"


@pytest.fixture(scope="session")
def speechbrain_checkpoint(tmp_path_factory) -> Path:
    reason = speechbrain_unavailable()
    if reason:
        pytest.skip(reason)
    return write_speechbrain_checkpoint(tmp_path_factory.mktemp("ecapa") / "tiny-ecapa")


@pytest.fixture(scope="session")
def speechbrain_embedder(speechbrain_checkpoint, tmp_path_factory):
    """The real loader on a checkpoint directory the test wrote (random weights), or on the real
    model named by BALTO_TEST_SPEECHBRAIN_MODEL (a local copy of speechbrain/spkrec-ecapa-voxceleb)."""
    from balto.adapters.speechbrain import load_speechbrain

    source = os.environ.get("BALTO_TEST_SPEECHBRAIN_MODEL") or str(speechbrain_checkpoint)
    return load_speechbrain(source, tmp_path_factory.mktemp("sb-cache"))


@pytest.fixture(params=["fake", "resemblyzer", "speechbrain"])
def embedder(request):
    if request.param == "fake":
        return FakeSpeakerEmbedder()
    return request.getfixturevalue(f"{request.param}_embedder")


def test_embedding_is_a_unit_float32_vector_of_dim(embedder):
    e = embedder.embed(voice("voz_d")[: 3 * 16_000])
    assert embedder.name and embedder.dim > 0
    assert e.dtype == np.float32 and e.shape == (embedder.dim,)
    assert np.all(np.isfinite(e)) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)


def test_same_audio_gives_the_same_embedding(embedder):
    pcm = voice("voz_e")[: 2 * 16_000]
    assert np.allclose(embedder.embed(pcm), embedder.embed(pcm.copy()), atol=1e-5)


def test_embedding_does_not_change_its_input(embedder):
    pcm = voice("voz_e")[: 2 * 16_000]
    before = pcm.copy()
    embedder.embed(pcm)
    assert np.array_equal(pcm, before)


@pytest.mark.parametrize("pcm", [np.zeros(32_000, np.int16), np.zeros(0, np.int16)], ids=["silent", "empty"])
def test_silent_or_empty_audio_is_refused(embedder, pcm):
    with pytest.raises(EmbeddingError):
        embedder.embed(pcm)


def test_a_voice_is_closer_to_itself_than_to_other_voices(embedder):
    if embedder.name.startswith("speechbrain") and not os.environ.get("BALTO_TEST_SPEECHBRAIN_MODEL"):
        pytest.skip("the SpeechBrain checkpoint written by the test has random weights; set "
                    "BALTO_TEST_SPEECHBRAIN_MODEL to a local spkrec-ecapa-voxceleb to check real voices")  # fmt: skip
    enrolled = {name: embedder.embed(voice(name, "enroll")) for name in VOICES}
    for name in (*VOICES, STRANGER):
        heard = embedder.embed(voice(name)[: 3 * 16_000])
        scores = {other: cosine(e, heard) for other, e in enrolled.items()}
        if name in enrolled:
            assert max(scores, key=scores.__getitem__) == name, scores
        else:
            # A voice nobody enrolled is less like any profile than the profiles' own voices are.
            own = min(cosine(enrolled[v], embedder.embed(voice(v)[: 3 * 16_000])) for v in VOICES)
            assert max(scores.values()) < own, scores


# -- Resemblyzer: Balto's fast path computes what resemblyzer itself does ----------------------------


def test_resemblyzer_mel_spectrogram_equals_librosa(resemblyzer_embedder):
    from resemblyzer.audio import wav_to_mel_spectrogram

    wav = voice("voz_f")[: 3 * 16_000].astype(np.float32) / 32768.0
    ours = resemblyzer_embedder.mel_spectrogram(wav)
    theirs = wav_to_mel_spectrogram(wav)
    assert ours.shape == theirs.shape
    assert np.allclose(ours, theirs, rtol=1e-4, atol=1e-6 * theirs.max())


def test_resemblyzer_embedding_equals_its_own_pipeline(resemblyzer_embedder):
    from resemblyzer import VoiceEncoder, preprocess_wav

    pcm = voice("voz_g")[: 4 * 16_000]
    theirs = VoiceEncoder("cpu", verbose=False).embed_utterance(preprocess_wav(pcm.astype(np.float32) / 32768.0))
    assert np.allclose(resemblyzer_embedder.embed(pcm), theirs, atol=1e-4)


SPEECH_LENGTHS = (160, 479, 480, 481, 16_000, 57_600, 100_000)  # samples: under, at and over one 30 ms window
NOISE_LEVELS = (0.01, 0.5, 2.0)  # 2.0 goes past int16, which both wrap the same way


def _trim_case(name: str) -> np.ndarray:
    kind, _, value = name.partition("-")
    if kind == "speech":
        return voice("voz_g")[: int(value)].astype(np.float32) / 32768.0
    if kind == "noise":
        return (np.random.default_rng(1).standard_normal(48_000) * float(value)).astype(np.float32)
    islands = np.zeros(64_000, np.float32)  # a voice between long silences, which are cut
    islands[20_000:30_000] = voice("voz_d")[:10_000] / 32768.0
    return islands


@pytest.mark.parametrize(
    "name", [*(f"speech-{n}" for n in SPEECH_LENGTHS), *(f"noise-{level}" for level in NOISE_LEVELS), "islands"]
)
def test_resemblyzer_silence_trimming_equals_its_own(name):
    # Balto's trim_long_silences packs the samples with numpy instead of struct; the same samples out.
    from resemblyzer.audio import trim_long_silences as theirs

    from balto.adapters.resemblyzer import trim_long_silences

    wav = _trim_case(name)
    ours = trim_long_silences(wav)
    assert ours.dtype == wav.dtype and np.array_equal(ours, theirs(wav))
    if name == "islands":
        assert 0 < ours.size < wav.size  # the long silences were cut, the voice kept


def test_resemblyzer_partial_rate_is_resemblyzers_own(resemblyzer_embedder):
    # bench.speakers --partial-rate measures other overlaps; each is embed_utterance's at that rate.
    from resemblyzer import VoiceEncoder, preprocess_wav

    from balto.adapters.resemblyzer import ResemblyzerEmbedder

    pcm = voice("voz_g")[: 5 * 16_000]
    sparse = ResemblyzerEmbedder(resemblyzer_embedder._encoder, resemblyzer_embedder._mel_basis, partial_rate=0.625)
    wav = preprocess_wav(pcm.astype(np.float32) / 32768.0)
    theirs = VoiceEncoder("cpu", verbose=False).embed_utterance(wav, rate=0.625)
    assert sparse.partial_rate == 0.625 and resemblyzer_embedder.partial_rate == 1.3
    assert np.allclose(sparse.embed(pcm), theirs, atol=1e-4)


# -- SpeechBrain: the loading code, on a checkpoint directory written here --------------------------


def test_speechbrain_loads_the_weights_of_a_model_directory(speechbrain_checkpoint, tmp_path):
    from balto.adapters.speechbrain import load_speechbrain

    embedder = load_speechbrain(str(speechbrain_checkpoint), tmp_path)
    assert embedder.name == "speechbrain:tiny-ecapa" and embedder.dim == 16
    pcm = voice("voz_n")[: 2 * 16_000]
    # The loaded model computes what the saved weights compute: they were loaded, not left random.
    assert np.allclose(embedder.embed(pcm), reference_ecapa_embedding(speechbrain_checkpoint, pcm), atol=1e-4)


def test_speechbrain_refuses_a_directory_that_is_not_a_model(tmp_path):
    from balto.adapters.speechbrain import load_speechbrain

    (tmp_path / "model").mkdir()
    with pytest.raises(FileNotFoundError, match=r"hyperparams\.yaml"):
        load_speechbrain(str(tmp_path / "model"), tmp_path)
