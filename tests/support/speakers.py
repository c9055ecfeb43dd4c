"""Speaker-identification test helpers: the committed voice fixtures, and the optional SpeechBrain."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
from bench.audio import FIXTURES

from balto.domain.speaker import SpeakerMatch
from balto.ports.inference import SpeakerIdentifier

SPEAKER_FIXTURES = FIXTURES / "speakers"


def speaker_manifest() -> dict[str, dict]:
    return json.loads((SPEAKER_FIXTURES / "speakers.json").read_text())


@cache
def voice(name: str, part: str = "test") -> np.ndarray:
    """A committed espeak-ng voice (`part` is "enroll" or "test"), decoded from Ogg/Opus."""
    from balto.adapters.ffmpeg import decode_audio_file

    return decode_audio_file(SPEAKER_FIXTURES / f"{name}_{part}.opus")


async def identify_segment(speakers: SpeakerIdentifier, pcm: np.ndarray, balcao_id: str) -> SpeakerMatch | None:
    """Both steps of a connection's speaker identification on a final segment: its voice, then who."""
    heard = await speakers.listen(pcm)  # (not `voice`: that is this module's fixture loader)
    return None if heard is None else await speakers.identify(heard, balcao_id)


def speechbrain_unavailable() -> str | None:
    """Why the SpeechBrain embedder cannot run here, or None when it can."""
    try:
        import speechbrain.inference.speaker  # noqa: F401
    except ImportError:
        return "speechbrain is not installed (it is the optional extra balto[speechbrain])"
    except Exception as exc:  # torchaudio raises OSError when its build does not match torch
        return f"speechbrain is installed but cannot be imported here: {type(exc).__name__}: {exc}"
    return None


TINY_ECAPA = dict(
    input_size=24,
    channels=[32, 32, 32, 32, 96],
    kernel_sizes=[5, 3, 3, 3, 1],
    dilations=[1, 2, 3, 4, 1],
    attention_channels=16,
    lin_neurons=16,
)

# A SpeechBrain model card laid out like speechbrain/spkrec-ecapa-voxceleb (whose checkpoints are
# found through `pretrained_path`, a hub id), with a tiny ECAPA so a test can write it in milliseconds.
HYPERPARAMS = """\
n_mels: 24
pretrained_path: speechbrain/not-a-real-hub-model

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: 16

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 16
    out_neurons: 4

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        classifier: !ref <classifier>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
"""


def write_speechbrain_checkpoint(folder: Path, seed: int = 3) -> Path:
    """A SpeechBrain model directory with seeded random weights; returns it. Needs speechbrain."""
    import torch
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(HYPERPARAMS)
    torch.save(ECAPA_TDNN(**TINY_ECAPA).state_dict(), folder / "embedding_model.ckpt")  # type: ignore[arg-type]
    torch.save(Classifier(input_size=16, out_neurons=4).state_dict(), folder / "classifier.ckpt")
    return folder


def reference_ecapa_embedding(folder: Path, pcm: np.ndarray) -> np.ndarray:
    """The embedding the checkpoint's weights give, computed without Balto's loader."""
    import torch
    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    from speechbrain.processing.features import InputNormalization

    model = ECAPA_TDNN(**TINY_ECAPA)  # type: ignore[arg-type]
    model.load_state_dict(torch.load(folder / "embedding_model.ckpt"))
    model.eval()
    wav = torch.from_numpy(pcm.astype(np.float32) / 32768.0).unsqueeze(0)
    lens = torch.ones(1)
    with torch.inference_mode():
        feats = InputNormalization(norm_type="sentence", std_norm=False)(Fbank(n_mels=24)(wav), lens)
        out = model(feats, lens).reshape(-1).numpy()
    return out / np.linalg.norm(out)
