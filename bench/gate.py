"""What the speech gate (SPEECH_GATE=silero) drops, what it saves, and what it must never lose.

    .venv/bin/python -m bench.gate [--snr 20 10 5] [--seeds 1 2 3 4 5 6 7 8] [--json PATH]

Builds counter-like conversations (the shared real sentences, or the committed fixtures, in a shuffled
order with pauses of 0.5-8 s in cafe noise, as bench.server does), cuts them as the server does (the
production VAD and segmenter, the pause gate on), and for every segment records Silero's per-frame
speech probabilities two ways: run afresh on the segment alone (`fresh`), and read from one pass of
the model over the whole conversation, its state carried (`streamed`: what the pause gate's stream
already holds in the server), with what the production WhisperTranscriber (beam 5, 15 s window: the
server's defaults) makes of the segment. Then, for each source and each gate setting (threshold,
minimum speech), it reports: segments kept, the segments with real words in them that the gate would
drop, the conversations' WER with the gate, and the share of Whisper's CPU time left. It also cuts
300 and 400 ms pieces out of the real sentences (a one-word answer, with the VAD's pre-roll and tail
of silence around it) and reports how many each setting lets through: clean and fresh, and mixed
into cafe noise at 20 dB after 3 s of that noise alone, fresh and streamed.

Whisper runs on every segment once (several minutes on two cores); the gate settings are compared on
those results, so each setting's WER is exactly what the server would store with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model
from balto.adapters.silero_gate import FRAME_MS, WINDOW, SileroSpeechGate, load_silero_gate
from balto.app.settings import Settings
from balto.domain.vad import SegmenterConfig, SpeechGatePolicy, SpeechTrack
from balto.evaluation import word_errors
from bench.audio import RATE, build_conversation, mix_at_snr, read_wav, real_audio_dir, utterances
from bench.pauses import run_gate

SETTINGS = [(0.3, 32.0), (0.5, 32.0), (0.5, 96.0), (0.5, 160.0), (0.7, 96.0), (0.7, 160.0)]


SOURCES = ("fresh", "streamed")


def streamed(gate: SileroSpeechGate, pcm: np.ndarray) -> SpeechTrack:
    """The model's windows over the whole of `pcm`, state carried: one call equals any feeding in pieces."""
    track = SpeechTrack(WINDOW, 0.0, keep=pcm.size // WINDOW + 1)
    track.extend(gate.stream().feed(pcm).result())
    return track


def cut_segments(snrs: list[float], seeds: list[int]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    gate = load_silero_gate()
    threshold = Settings().pause_gate_threshold
    rows, references = [], {}
    for snr in snrs:
        for seed in seeds:
            conversation = build_conversation(seed=seed, snr_db=snr, pauses=(0.5, 8.0), shuffle=True)
            references[f"{snr}-{seed}"] = conversation.text
            pieces = run_gate(conversation.pcm, conversation.spans, SegmenterConfig(), gate.stream(), threshold)
            track = streamed(gate, conversation.pcm)
            for piece in pieces["segments"]:
                overlap = sum(max(0.0, min(piece.end_s, e) - max(piece.start_s, b)) for b, e in conversation.spans)
                started = time.process_time()
                probabilities = gate.probabilities(piece.pcm)
                rows.append(
                    {
                        "snr": snr,
                        "seed": seed,
                        "duration_s": piece.pcm.size / RATE,
                        "speech_overlap_s": overlap,  # seconds of scripted sentences inside the segment
                        "fresh": probabilities,
                        "streamed": track.probabilities(piece.first_sample, piece.first_sample + piece.pcm.size),
                        "gate_cpu_s": time.process_time() - started,
                        "pcm": piece.pcm,
                    }
                )
    gate.close()
    return rows, references


def transcribe(rows: list[dict[str, Any]], threads: int) -> None:
    model = load_whisper_model("base", Path.home() / ".cache" / "balto" / "models", "int8", threads)
    transcriber = WhisperTranscriber(model, ThreadPoolExecutor(1), language="pt", window_s=15.0, beam_size=5)
    for row in rows:
        started = time.process_time()
        row["text"] = asyncio.run(transcriber.transcribe(row["pcm"], "pt")).text
        row["whisper_cpu_s"] = time.process_time() - started


def short_pieces() -> dict[str, list[np.ndarray]]:
    """300 and 400 ms of real speech, with 240 ms of silence either side (the VAD's pre-roll and tail):
    each piece's probabilities clean and fresh, and mixed into cafe noise at 20 dB after 3 s of that
    noise alone, fresh and streamed (the model having heard the 3 s)."""
    gate = load_silero_gate()
    pad = np.zeros(int(0.24 * RATE), dtype=np.int16)
    lead = np.zeros(3 * RATE, dtype=np.int16)
    audio = real_audio_dir()
    noise = read_wav(audio / "noise" / "blanket_coffee-shop.wav") if audio is not None else None
    rng = np.random.default_rng(0)
    out: dict[str, list[np.ndarray]] = {"clean": [], "noisy fresh": [], "noisy streamed": []}
    for pcm, _ in utterances("auto"):
        frames = gate.probabilities(pcm)
        for length in (int(0.3 * RATE), int(0.4 * RATE)):
            for start in range(0, pcm.size - length, RATE // 5):
                middle = min((start + length // 2) // 512, frames.size - 1)
                if frames[middle] < 0.8:  # outside speech, by the model's own reading of the whole sentence
                    continue
                piece = np.concatenate([pad, pcm[start : start + length], pad])
                out["clean"].append(gate.probabilities(piece))
                if noise is None:
                    continue
                # speech power is measured over the piece's active samples, so the lead adds no speech
                mixed = mix_at_snr(np.concatenate([lead, piece]), noise, 20.0, rng)
                out["noisy fresh"].append(gate.probabilities(mixed[lead.size :]))
                track = streamed(gate, mixed)
                out["noisy streamed"].append(track.probabilities(lead.size, mixed.size))
    gate.close()
    return out


def report(
    rows: list[dict[str, Any]], references: dict[str, str], pieces: dict[str, list[np.ndarray]]
) -> dict[str, Any]:
    whisper_total = sum(r["whisper_cpu_s"] for r in rows)

    def wer(keep: list[bool]) -> dict[str, float]:
        out = {}
        for snr in sorted({r["snr"] for r in rows}, reverse=True):
            errors = words = 0
            for key, reference in references.items():
                if not key.startswith(f"{snr}-"):
                    continue
                seed = int(key.split("-")[1])
                said = [
                    r["text"] for r, k in zip(rows, keep, strict=True) if k and r["snr"] == snr and r["seed"] == seed
                ]
                e, w = word_errors(reference, " ".join(t for t in said if t))
                errors, words = errors + e, words + w
            out[f"{snr:g} dB"] = round(errors / words, 4)
        return out

    speech = [r for r in rows if r["speech_overlap_s"] > 0]
    result: dict[str, Any] = {
        "segments": len(rows),
        "segments_overlapping_speech": len(speech),
        "noise_segments": len(rows) - len(speech),
        "noise_segments_whisper_wrote_words_for": sum(1 for r in rows if r["speech_overlap_s"] == 0 and r["text"]),
        "gate_cpu_ms_per_segment": round(1000 * float(np.mean([r["gate_cpu_s"] for r in rows])), 2),
        "gate_cpu_s_per_audio_s": round(sum(r["gate_cpu_s"] for r in rows) / sum(r["duration_s"] for r in rows), 5),
        "whisper_cpu_s_per_segment": round(whisper_total / len(rows), 3),
        "no_gate": {"wer": wer([True] * len(rows))},
        "short_speech_pieces": {kind: len(found) for kind, found in pieces.items()},
        "settings": [],
    }
    for source in SOURCES:
        for threshold, min_ms in SETTINGS:
            policy = SpeechGatePolicy(threshold, min_ms)
            keep = [policy.passes(r[source], FRAME_MS) for r in rows]
            result["settings"].append(
                {
                    "source": source,
                    "threshold": threshold,
                    "min_speech_ms": min_ms,
                    "segments_kept": sum(keep),
                    "noise_segments_dropped": sum(
                        1 for r, k in zip(rows, keep, strict=True) if not k and not r["speech_overlap_s"]
                    ),
                    "dropped_with_words": [
                        {"snr": r["snr"], "speech_overlap_s": round(r["speech_overlap_s"], 2), "whisper": r["text"]}
                        for r, k in zip(rows, keep, strict=True)
                        if not k and r["text"] and r["speech_overlap_s"] > 0
                    ],
                    "wer": wer(keep),
                    "whisper_cpu_left": round(
                        sum(r["whisper_cpu_s"] for r, k in zip(rows, keep, strict=True) if k) / whisper_total, 3
                    ),
                    "short_pieces_passed": {
                        kind: round(float(np.mean([policy.passes(p, FRAME_MS) for p in found])), 3) if found else None
                        for kind, found in pieces.items()
                        if kind == "clean" or kind.endswith(source)
                    },
                }
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snr", type=float, nargs="+", default=[20.0, 10.0, 5.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows, references = cut_segments(args.snr, args.seeds)
    print(f"{len(rows)} segments; transcribing each once...", flush=True)
    transcribe(rows, args.threads)
    result = report(rows, references, short_pieces())
    print(f"no gate: WER {result['no_gate']['wer']}")
    print(
        f"{'source':>8} {'threshold':>9} {'min ms':>6} {'kept':>5} {'noise dropped':>13} {'lost words':>10}"
        f" {'Whisper CPU':>11}  short pieces passed; WER"
    )
    for s in result["settings"]:
        print(
            f"{s['source']:>8} {s['threshold']:>9} {s['min_speech_ms']:>6g} {s['segments_kept']:>5}"
            f" {s['noise_segments_dropped']:>13} {len(s['dropped_with_words']):>10} {s['whisper_cpu_left']:>11}"
            f"  {s['short_pieces_passed']}; {s['wer']}"
        )
    summary = {k: v for k, v in result.items() if k != "settings"}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
