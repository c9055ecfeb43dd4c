"""SpeechBrain's ECAPA-TDNN speaker encoder (the design card's choice), an optional extra.

`pip install 'balto[speechbrain]'`. Not installed by default: speechbrain imports torchaudio, and the
torchaudio wheels on PyPI are CUDA builds tied to one torch release, which do not load beside the CPU
torch Balto pins (README, "Speaker identification"). The model comes from a local directory holding a
SpeechBrain `hyperparams.yaml` and its checkpoints (e.g. a copy of speechbrain/spkrec-ecapa-voxceleb),
or from a hub id where a hub is reachable.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from balto.adapters.torch_threads import use_torch_threads
from balto.domain.speaker import EmbeddingError, unit
from balto.ports.inference import SpeakerEmbedder

log = logging.getLogger(__name__)

DEFAULT_MODEL = "speechbrain/spkrec-ecapa-voxceleb"
RATE = 16_000
MIN_SAMPLES = RATE // 10  # ECAPA's convolutions need a few frames


class SpeechBrainEmbedder(SpeakerEmbedder):
    """Speech in, ECAPA-TDNN's x-vector (192-d for spkrec-ecapa-voxceleb) out, unit-normalised."""

    def __init__(self, classifier: Any, dim: int, name: str, threads: int = 0) -> None:
        self._classifier = classifier
        self._threads = threads
        self._dim = dim
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, pcm: np.ndarray) -> np.ndarray:
        import torch

        if pcm.ndim != 1 or pcm.size < MIN_SAMPLES:
            raise EmbeddingError(f"expected at least {MIN_SAMPLES} mono samples, got shape {pcm.shape}")
        if not np.any(pcm):
            raise EmbeddingError("silent audio has no voice to embed")
        use_torch_threads(self._threads)  # this call's thread: usually the speaker executor's
        wav = torch.from_numpy(pcm.astype(np.float32) / 32768.0).unsqueeze(0)
        with torch.inference_mode():
            embedding = self._classifier.encode_batch(wav).reshape(-1).numpy()
        return unit(embedding)


def _hub_cache_name(source: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "--", source)


def load_speechbrain(source: str, cache_dir: Path, threads: int = 1) -> SpeechBrainEmbedder:
    """Load an ECAPA encoder from a local SpeechBrain model directory, or from a hub id into `cache_dir`."""
    path = Path(source).expanduser()
    local = path.is_dir() or source.startswith((".", "/", "~"))
    overrides: dict[str, str] = {}
    if local:
        path = path.resolve()
        hparams = path / "hyperparams.yaml"
        if not hparams.is_file():
            raise FileNotFoundError(f"SPEAKER_MODEL: {path} has no hyperparams.yaml (not a SpeechBrain model dir)")
        # Hub model cards point their checkpoints at `pretrained_path` (the hub id); aim it at the
        # directory itself so a copied model loads without a network.
        if re.search(r"^pretrained_path\s*:", hparams.read_text(encoding="utf-8"), re.MULTILINE):
            overrides["pretrained_path"] = str(path)
    import torch
    from speechbrain.inference.speaker import EncoderClassifier

    use_torch_threads(threads)
    if local:
        savedir, name = path, f"speechbrain:{path.name}"
    else:
        savedir, name = cache_dir / "speechbrain" / _hub_cache_name(source), f"speechbrain:{source.rsplit('/', 1)[-1]}"
    classifier = EncoderClassifier.from_hparams(
        source=str(path) if local else source, savedir=str(savedir), overrides=overrides, run_opts={"device": "cpu"}
    )
    if classifier is None:
        raise RuntimeError(f"SPEAKER_MODEL: SpeechBrain could not load {source}")
    classifier.eval()
    # One pass tells the embedding size and pays the first-call costs at start-up.
    probe = (np.random.default_rng(0).standard_normal(RATE) * 3000).astype(np.int16)
    with torch.inference_mode():
        dim = int(classifier.encode_batch(torch.from_numpy(probe.astype(np.float32) / 32768.0).unsqueeze(0)).numel())
    embedder = SpeechBrainEmbedder(classifier, dim, name, threads)
    log.info("speaker embedder %s loaded (%d-d) from %s", name, dim, source)
    return embedder
