"""Whisper's decoder over Portuguese tokens only (`STT_VOCABULARY`): make the list, measure what it costs.

    .venv/bin/pip install wordfreq==3.1.1   # only to make the list; the server never needs it
    .venv/bin/python -m bench.vocabulary build [--words 50000] [--language pt]
    .venv/bin/python -m bench.vocabulary measure [--words-lists 20000 50000 100000]

`build` writes `src/balto/adapters/data/whisper_tokens_<language>.txt`: the text tokens of Whisper's
tokenizer that the language's most frequent words (wordfreq's `large` list) are written with, alone
and after a space, lower-case, capitalised and (up to four letters) in capitals; every single-byte
token, so any text can still be spelt; and every token of digits, spaces and punctuation.

`measure` decodes the same audio with the whole vocabulary and with lists of several sizes (made on
the fly, so it needs wordfreq too, unless `--words-lists` is empty): the 10 transcribed sentences of
`../shared/audio/pt_transcribed` (10 s window, as the server) and the 35 read utterances of
`../shared/audio/pt_speakers` (10-17 s, one 30 s window each; no transcripts, so it counts the words
that change), and prints the encoder's and the decoder's CPU per segment and every word that changed.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import tempfile
from pathlib import Path

import numpy as np

from balto.adapters.whisper_vocabulary import FIRST_SPECIAL, LISTS, load_restricted_whisper, shipped_list
from balto.evaluation import real_audio_dir
from bench.machine import cpu_s

ROOT = Path(__file__).resolve().parent.parent
# Tokens made only of these are kept whatever the words: numbers, prices, punctuation, spaces.
NOT_WORDS = re.compile(r"^[\s0-9.,;:!?'\"()\-%$€ªº°/&@#*+=\[\]…–—“”‘’]*$")


def token_list(tokenizer_json: Path, vocabulary_json: Path, language: str, words: int) -> list[int]:
    from tokenizers import Tokenizer
    from wordfreq import top_n_list

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    pieces = json.loads(vocabulary_json.read_text(encoding="utf-8"))
    kept = set()
    for i in range(FIRST_SPECIAL):
        text = tokenizer.decode([i])
        if len(pieces[i]) == 1 or ("\ufffd" not in text and NOT_WORDS.match(text)):
            kept.add(i)
    for word in top_n_list(language, words, wordlist="large"):
        forms = {word, word.capitalize(), word.upper() if len(word) <= 4 else word}
        for form in forms:
            for text in (form, " " + form):
                kept.update(tokenizer.encode(text, add_special_tokens=False).ids)
    return sorted(kept)


def _model_dir() -> Path:
    from balto.adapters.faster_whisper import resolve_model_path

    return Path(resolve_model_path("base", Path.home() / ".cache" / "balto" / "models"))


def build(args: argparse.Namespace) -> None:
    model_dir = _model_dir()
    ids = token_list(model_dir / "tokenizer.json", model_dir / "vocabulary.json", args.language, args.words)
    target = ROOT / "src" / "balto" / "adapters" / "data" / LISTS[args.language]
    header = (
        f"# Whisper's text tokens for {args.language!r}: `python -m bench.vocabulary build --words {args.words}"
        f" --language {args.language}` (wordfreq's {args.words} most frequent words, their forms, single bytes,"
        " digits and punctuation).\n"
    )
    target.write_text(header + "".join(f"{i}\n" for i in ids), encoding="utf-8")
    print(f"{len(ids)} of {FIRST_SPECIAL} text tokens -> {target}")


def _features(model, pcm: np.ndarray, frames: int) -> np.ndarray:
    mel = model.feature_extractor(pcm.astype(np.float32) / 32768.0)
    mel = mel[:, :frames] if mel.shape[1] >= frames else np.pad(mel, ((0, 0), (0, frames - mel.shape[1])))
    return np.ascontiguousarray(mel[None])


def measure(args: argparse.Namespace) -> None:
    import ctranslate2
    import soundfile
    import threadpoolctl
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    from balto.adapters.faster_whisper import load_whisper_model
    from bench.audio import utterances

    threadpoolctl.threadpool_limits(1)
    cache = Path.home() / ".cache" / "balto" / "models"
    full = load_whisper_model("base", cache, "int8", 1)
    tokenizer = Tokenizer(full.hf_tokenizer, True, task="transcribe", language="pt")
    suppressed = get_suppressed_tokens(tokenizer, [-1])
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    sets = {
        "sentences (10 s window)": [_features(full, pcm, 1000) for pcm, _ in utterances("auto")],
        "read utterances (30 s window)": [
            _features(full, (soundfile.read(f, dtype="int16")[0]), 3000)
            for f in sorted(Path(args.audio, "pt_speakers").glob("*/*.wav"))
        ]
        if args.audio
        else [],
    }
    sets = {name: features for name, features in sets.items() if features}  # no shared audio, no read utterances
    models: dict[str, tuple] = {"whole vocabulary": (full.model, None)}
    model_dir = _model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        lists = {f"shipped list ({shipped_list('pt').name})": shipped_list("pt")}
        for words in args.words_lists:
            path = Path(tmp) / f"{words}.txt"
            ids = token_list(model_dir / "tokenizer.json", model_dir / "vocabulary.json", "pt", words)
            path.write_text("\n".join(map(str, ids)))
            lists[f"{words} words"] = path
        for name, path in lists.items():
            restricted = load_restricted_whisper(model_dir, Path(tmp), "pt", "int8", 1, 1, list_file=path)
            models[f"{name}, {restricted.vocabulary.size} tokens"] = (restricted.model, restricted.vocabulary)
        for set_name, features in sets.items():
            texts: dict[str, list[str]] = {}
            for name, (model, vocabulary) in models.items():
                p = prompt if vocabulary is None else vocabulary.prompt(prompt)
                s = list(suppressed) if vocabulary is None else vocabulary.suppressed(suppressed)
                encoder = decoder = 0.0
                texts[name] = []
                for f in features:
                    started = cpu_s()
                    encoded = model.encode(ctranslate2.StorageView.from_array(f), to_cpu=False)
                    encoded_at = cpu_s()
                    result = model.generate(
                        encoded, [p], beam_size=5, max_length=len(p) + 220, suppress_blank=True, suppress_tokens=s
                    )[0]
                    decoder += cpu_s() - encoded_at
                    encoder += encoded_at - started
                    ids = result.sequences_ids[0]
                    ids = ids if vocabulary is None else vocabulary.original(ids)
                    texts[name].append(full.hf_tokenizer.decode(ids).strip())
                n = len(features)
                cost = f"encoder {encoder / n:.3f}, decoder {decoder / n:.3f} CPU-s per segment"
                print(f"{set_name}, {name}: {cost}", flush=True)
            reference = texts["whole vocabulary"]
            total = sum(len(_words(t)) for t in reference)
            for name in list(models)[1:]:
                changed = 0
                for a, b in zip(reference, texts[name], strict=True):
                    wa, wb = _words(a), _words(b)
                    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=wa, b=wb).get_opcodes():
                        if op != "equal":
                            changed += max(i2 - i1, j2 - j1)
                            print(f"    {' '.join(wa[i1:i2])!r} -> {' '.join(wb[j1:j2])!r}")
                print(f"{set_name}, {name}: {changed} of {total} words changed (lower-case, no punctuation)")


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build")
    b.add_argument("--words", type=int, default=50_000)
    b.add_argument("--language", default="pt", choices=sorted(LISTS))
    m = commands.add_parser("measure")
    m.add_argument("--words-lists", type=int, nargs="*", default=[20_000, 100_000])
    m.add_argument(
        "--audio",
        default=real_audio_dir(),
        help="the shared audio (default: BALTO_REAL_AUDIO_DIR, else ../shared/audio)",
    )
    args = parser.parse_args()
    build(args) if args.command == "build" else measure(args)


if __name__ == "__main__":
    main()
