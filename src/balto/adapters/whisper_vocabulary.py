"""Whisper's decoder over one language's tokens (`STT_VOCABULARY`).

Every step of Whisper's decoder ends in a product of its state with the whole vocabulary (51,865
tokens x 512 for the multilingual base model): on the AMD EPYC Zen 4 CPU it is 45% of the decoder's
time (`ONEDNN_VERBOSE=1`, docs/performance.md, item 21), more than the six decoder layers' products
together, and most of those tokens belong to other scripts and languages. This module makes a copy
of the model whose vocabulary keeps the text tokens a language is written with (a list shipped in
`data/`, made by `bench/vocabulary.py` from the language's 50,000 most frequent words, their
capitalised forms, every single-byte token, digits and punctuation) and all of Whisper's special
tokens, in their order; the copy's projection and embeddings hold only those rows. Ids are mapped in
(the prompt, the suppressed tokens) and out (the words), so callers keep using Whisper's tokenizer.

The copy is written once next to the other models (`BALTO_MODEL_CACHE`), named by a digest of the
source model and the list, so a new model or list makes a new copy, and reused on every later start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from balto.adapters.faster_whisper import MODEL_FILES

log = logging.getLogger(__name__)

MULTILINGUAL_VOCABULARY = 51_865  # Whisper's multilingual models up to large-v2
FIRST_SPECIAL = 50_257  # <|endoftext|>: every token from here on is special (languages, tasks, times)
LISTS = {"pt": "whisper_tokens_pt.txt"}  # languages with a shipped list
# The variables whose rows are the vocabulary's (the projection shares the embeddings' in Whisper).
ROW_VARIABLES = (
    "decoder/embeddings/weight",
    "decoder/embeddings/weight_scale",
    "decoder/projection/weight",
    "decoder/projection/weight_scale",
    "decoder/projection/bias",
)
# CTranslate2's DataType ids (model.bin, binary version 6) and their item sizes.
ITEM_SIZES = {0: 4, 1: 1, 2: 2, 3: 4, 4: 2, 5: 2}


class VocabularyError(ValueError):
    """The model or the list cannot be restricted (another vocabulary, an unknown model format)."""


def shipped_list(language: str | None) -> Path | None:
    """The shipped token list for `language`, None where there is none."""
    name = LISTS.get(language or "")
    return Path(__file__).parent / "data" / name if name else None


def read_token_list(path: Path) -> np.ndarray:
    """The text token ids of a list file: one id per line, `#` comments."""
    ids = [int(line) for raw in path.read_text(encoding="utf-8").splitlines() if (line := raw.split("#")[0].strip())]
    kept = np.unique(np.asarray(ids, dtype=np.int64))
    if kept.size == 0 or kept[0] < 0 or kept[-1] >= FIRST_SPECIAL:
        raise VocabularyError(f"{path}: text token ids must be 0-{FIRST_SPECIAL - 1}")
    return kept


@dataclass(frozen=True)
class RestrictedVocabulary:
    """The map between Whisper's token ids and those of the restricted copy."""

    language: str
    kept: np.ndarray  # Whisper's ids kept, ascending: the list's text tokens, then every special one
    to_new: np.ndarray  # Whisper's id -> the copy's, -1 where dropped

    @classmethod
    def of(cls, language: str, text_tokens: np.ndarray, size: int = MULTILINGUAL_VOCABULARY) -> RestrictedVocabulary:
        kept = np.concatenate([np.unique(text_tokens[text_tokens < FIRST_SPECIAL]), np.arange(FIRST_SPECIAL, size)])
        to_new = np.full(size, -1, dtype=np.int64)
        to_new[kept] = np.arange(kept.size)
        return cls(language, kept, to_new)

    @property
    def size(self) -> int:
        return int(self.kept.size)

    def prompt(self, ids: Iterable[int]) -> list[int]:
        """A prompt of special tokens (and, if any, text tokens of the list) in the copy's ids."""
        mapped = [int(self.to_new[i]) for i in ids]
        if min(mapped, default=0) < 0:
            raise VocabularyError("the prompt holds a token outside the restricted vocabulary")
        return mapped

    def suppressed(self, ids: Iterable[int]) -> list[int]:
        """Tokens to suppress, in the copy's ids; those it does not hold cannot come out anyway."""
        return [int(n) for i in ids if (n := self.to_new[i]) >= 0]

    def original(self, ids: Sequence[int]) -> list[int]:
        """The copy's output ids as Whisper's, for its tokenizer."""
        return [int(i) for i in self.kept[np.asarray(ids, dtype=np.int64)]] if len(ids) else []


def _digest(model_dir: Path, text_tokens: np.ndarray) -> str:
    h = hashlib.sha256(text_tokens.astype("<i8").tobytes())
    for name in ("model.bin", *MODEL_FILES):
        stat = (model_dir / name).stat()
        h.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def restrict_model_bin(source: bytes, kept: np.ndarray, size: int = MULTILINGUAL_VOCABULARY) -> bytes:
    """CTranslate2's model.bin (binary version 6) with only the `kept` rows of the vocabulary's
    variables; every other byte as it was."""
    out = bytearray()
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, source, pos)
        out.extend(source[pos : pos + struct.calcsize(fmt)])
        pos += struct.calcsize(fmt)
        return value

    def take_string() -> str:
        nonlocal pos
        length = take("<H")
        text = source[pos : pos + length]
        out.extend(text)
        pos += length
        return text.rstrip(b"\0").decode()

    version = take("<I")
    if version != 6:
        raise VocabularyError(f"model.bin binary version {version}; only version 6 is known")
    take_string()  # the spec's name
    take("<I")  # its revision
    restricted = 0
    for _ in range(take("<I")):
        name = take_string()
        (rank,) = struct.unpack_from("<B", source, pos)
        dims = list(struct.unpack_from(f"<{rank}I", source, pos + 1))
        dtype = source[pos + 1 + 4 * rank]
        (nbytes,) = struct.unpack_from("<I", source, pos + 2 + 4 * rank)
        start = pos + 6 + 4 * rank
        data = source[start : start + nbytes]
        pos = start + nbytes
        if name in ROW_VARIABLES and dims and dims[0] == size:
            if dtype not in ITEM_SIZES:
                raise VocabularyError(f"{name}: unknown data type {dtype}")
            rows = np.frombuffer(data, dtype=np.uint8).reshape(size, -1)
            data = rows[kept].tobytes()
            dims[0] = kept.size
            restricted += 1
        out.extend(struct.pack("<B", rank))
        out.extend(struct.pack(f"<{rank}I", *dims))
        out.append(dtype)
        out.extend(struct.pack("<I", len(data)))
        out.extend(data)
    out.extend(source[pos:])  # the aliases (the projection is the embeddings') and anything after
    if not restricted:
        raise VocabularyError("model.bin holds no variable with the vocabulary's rows")
    return bytes(out)


def _restricted_config(config: dict[str, Any], vocabulary: RestrictedVocabulary) -> dict[str, Any]:
    config = dict(config)
    for key in ("suppress_ids", "suppress_ids_begin", "lang_ids"):
        if key in config:
            config[key] = vocabulary.suppressed(config[key])
    return config


def restricted_model(
    model_dir: Path, cache_dir: Path, language: str, list_file: Path
) -> tuple[Path, RestrictedVocabulary]:
    """The restricted copy of the CTranslate2 Whisper model in `model_dir` (written into `cache_dir`
    the first time) and its id map. Raises VocabularyError for a model it cannot restrict."""
    words = json.loads((model_dir / "vocabulary.json").read_text(encoding="utf-8"))
    if len(words) != MULTILINGUAL_VOCABULARY or words[FIRST_SPECIAL] != "<|endoftext|>":
        raise VocabularyError(
            f"{model_dir}: {len(words)} tokens; the shipped lists are for the multilingual vocabulary of "
            f"{MULTILINGUAL_VOCABULARY} (tiny to large-v2)"
        )
    vocabulary = RestrictedVocabulary.of(language, read_token_list(list_file))
    target = cache_dir / f"{model_dir.name}-{language}-{_digest(model_dir, vocabulary.kept)}"
    if all((target / name).exists() for name in ("model.bin", *MODEL_FILES)):
        return target, vocabulary
    # Written beside and renamed, so a crash or a second process never sees half a model.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "model.bin").write_bytes(restrict_model_bin((model_dir / "model.bin").read_bytes(), vocabulary.kept))
    (partial / "vocabulary.json").write_text(
        json.dumps([words[i] for i in vocabulary.kept], ensure_ascii=False), encoding="utf-8"
    )
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    (partial / "config.json").write_text(json.dumps(_restricted_config(config, vocabulary)), encoding="utf-8")
    shutil.copyfile(model_dir / "tokenizer.json", partial / "tokenizer.json")
    try:
        partial.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    log.info("wrote Whisper over %d of %d tokens (%s) in %s", vocabulary.size, len(words), language, target)
    return target, vocabulary


@dataclass(frozen=True)
class RestrictedWhisper:
    """A CTranslate2 Whisper over a restricted vocabulary, and the map to Whisper's ids."""

    vocabulary: RestrictedVocabulary
    model: Any  # ctranslate2.models.Whisper


def load_restricted_whisper(
    model_dir: Path,
    cache_dir: Path,
    language: str,
    compute_type: str = "int8",
    cpu_threads: int = 1,
    workers: int = 1,
    list_file: Path | None = None,
) -> RestrictedWhisper:
    import ctranslate2

    list_file = list_file or shipped_list(language)
    if list_file is None:
        raise VocabularyError(f"no token list ships for language {language!r} (lists: {', '.join(LISTS)})")
    path, vocabulary = restricted_model(model_dir, cache_dir, language, list_file)
    model = ctranslate2.models.Whisper(
        str(path),
        device="cpu",
        compute_type=compute_type,
        intra_threads=cpu_threads or (os.cpu_count() or 1),
        inter_threads=workers,
    )
    return RestrictedWhisper(vocabulary, model)
