"""Whisper over one language's tokens: the id map and the model file's rewrite, on literal inputs
(the real model's copy is in tests/contract/test_whisper_vocabulary.py)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from balto.adapters.whisper_vocabulary import (
    FIRST_SPECIAL,
    MULTILINGUAL_VOCABULARY,
    RestrictedVocabulary,
    VocabularyError,
    read_token_list,
    restrict_model_bin,
    shipped_list,
)


def test_the_map_keeps_the_listed_text_tokens_and_every_special_one_in_order():
    vocabulary = RestrictedVocabulary.of("pt", np.array([7, 3, 3, 220]))
    assert vocabulary.kept[:3].tolist() == [3, 7, 220]
    assert vocabulary.kept[3:].tolist() == list(range(FIRST_SPECIAL, MULTILINGUAL_VOCABULARY))
    assert vocabulary.size == 3 + MULTILINGUAL_VOCABULARY - FIRST_SPECIAL
    sot, pt, transcribe, no_timestamps = 50258, 50267, 50359, 50363
    prompt = vocabulary.prompt([sot, pt, transcribe, no_timestamps])
    assert prompt == [3 + 1, 3 + 10, 3 + 102, 3 + 106]  # still in Whisper's order, as CTranslate2 checks
    assert vocabulary.original(prompt) == [sot, pt, transcribe, no_timestamps]
    assert vocabulary.original([0, 2, 1]) == [3, 220, 7]
    assert vocabulary.original([]) == []


def test_tokens_the_copy_does_not_hold_cannot_be_suppressed_nor_prompted():
    vocabulary = RestrictedVocabulary.of("pt", np.array([3, 7]))
    assert vocabulary.suppressed([3, 5, 7, FIRST_SPECIAL]) == [0, 1, 2]
    with pytest.raises(VocabularyError):
        vocabulary.prompt([50258, 5])


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name: str, array: np.ndarray, dtype: int) -> bytes:
    dims = array.shape
    data = array.tobytes()
    return (
        _string(name)
        + struct.pack("<B", len(dims))
        + struct.pack(f"<{len(dims)}I", *dims)
        + bytes([dtype])
        + struct.pack("<I", len(data))
        + data
    )


def _model_bin(variables: list[bytes], version: int = 6) -> bytes:
    aliases = struct.pack("<I", 1) + _string("decoder/projection/weight") + _string("decoder/embeddings/weight")
    return (
        struct.pack("<I", version)
        + _string("WhisperSpec")
        + struct.pack("<I", 3)
        + struct.pack("<I", len(variables))
        + b"".join(variables)
        + aliases
    )


def _read(model_bin: bytes) -> dict[str, tuple[list[int], int, bytes]]:
    pos = 0

    def take(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, model_bin, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("<H")
        pos += n
        return model_bin[pos - n : pos - 1].decode()

    take("<I"), string(), take("<I")
    out = {}
    for _ in range(take("<I")):
        name = string()
        rank = take("<B")
        dims = [take("<I") for _ in range(rank)]
        dtype = take("<B")
        n = take("<I")
        out[name] = (dims, dtype, model_bin[pos : pos + n])
        pos += n
    aliases = take("<I")
    out["alias"] = ([aliases], 0, model_bin[pos:])
    return out


def test_the_model_file_keeps_only_the_vocabularys_kept_rows_and_every_other_byte():
    size = 6
    embeddings = np.arange(size * 4, dtype=np.float16).reshape(size, 4)
    scale = np.arange(size, dtype=np.float32)
    other = np.array([1.5, 2.5, 3.5], dtype=np.float32)
    source = _model_bin(
        [
            _variable("encoder/conv1/weight", other, 0),
            _variable("decoder/embeddings/weight", embeddings, 4),
            _variable("decoder/embeddings/weight_scale", scale, 0),
        ]
    )
    restricted = _read(restrict_model_bin(source, np.array([0, 2, 5]), size=size))
    dims, dtype, data = restricted["decoder/embeddings/weight"]
    assert (dims, dtype) == ([3, 4], 4)
    assert np.array_equal(np.frombuffer(data, np.float16).reshape(3, 4), embeddings[[0, 2, 5]])
    assert np.frombuffer(restricted["decoder/embeddings/weight_scale"][2], np.float32).tolist() == [0.0, 2.0, 5.0]
    assert restricted["encoder/conv1/weight"] == ([3], 0, other.tobytes())
    assert restricted["alias"] == _read(source)["alias"]  # the projection still is the embeddings


def test_a_model_file_it_does_not_know_is_refused():
    embeddings = _variable("decoder/embeddings/weight", np.zeros((6, 2), np.float16), 4)
    with pytest.raises(VocabularyError, match="version"):
        restrict_model_bin(_model_bin([embeddings], version=5), np.array([0]), size=6)
    with pytest.raises(VocabularyError, match="no variable"):
        restrict_model_bin(_model_bin([embeddings]), np.array([0]), size=7)  # another vocabulary's size


def test_a_token_list_is_ids_one_a_line_with_comments(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("# made by hand\n5\n3 # a comment\n\n5\n")
    assert read_token_list(path).tolist() == [3, 5]
    path.write_text(f"3\n{FIRST_SPECIAL}\n")
    with pytest.raises(VocabularyError):
        read_token_list(path)


def test_portuguese_ships_a_list_of_text_tokens_and_other_languages_none():
    path = shipped_list("pt")
    assert path is not None and path.exists()
    ids = read_token_list(path)
    assert 20_000 < ids.size < FIRST_SPECIAL
    assert set(range(256)) <= set(ids.tolist())  # every single byte: anything can still be spelt
    assert shipped_list("es") is None and shipped_list(None) is None
