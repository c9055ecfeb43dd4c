"""How well does speaker identification work, and what does it cost? Chooses the calibration.

    .venv/bin/python -m bench.speakers [--source auto|real|fixtures] [--snr 20 [--clean [--cleaner-padding N]]]
        [--json PATH] [--embedder resemblyzer|speechbrain] [--model PATH_OR_HUB_ID]
    make bench-speakers

Voices: the six real Portuguese speakers of `../shared/audio/pt_speakers` (MLS, CC BY 4.0) when present
(`BALTO_REAL_AUDIO_DIR`), else the committed espeak-ng voices of `tests/fixtures/speakers`. Each voice is
enrolled, as `balto speakers enroll` does, from its first recordings (10-20 s of audio); its other
recordings are cut into held-apart segments of 1, 1.5, 2, 3 and 5 s.

- Known voices: every voice enrolled; a segment is right when its match is its own profile.
- Unknown voices (leave one speaker out): each voice in turn is left out of the enrolled set and its
  segments must come out `desconhecido`; never-enrolled fixture voices are tried against the full set.
- Calibration: the threshold (at 2 s, and its slope per doubling of duration) that best balances the
  two rates on segments of 2 s and more, also cross-validated leaving one speaker out; the softmax
  temperature that minimises the negative log-likelihood of the right class.
- Clustering: unknown voices of one connection told apart online, two and three at a time.
- Cost: CPU milliseconds per second of speech for one embedding (one thread, as the server runs it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from balto.adapters.noisereduce_cleaner import PADDING as NOISEREDUCE_PADDING
from balto.domain.speaker import UNKNOWN, Calibration, SpeakerProfile, UnknownVoices
from bench.audio import FIXTURES, RATE, mix_at_snr, read_wav, real_audio_dir
from bench.audio import pink_noise as _pink_noise

LENGTHS = (1.0, 1.5, 2.0, 3.0, 5.0)
MIN_EVAL_S = 2.0  # the figures are over held-apart segments of 2 s and more
ENROLL_MIN_S, ENROLL_MAX_S = 10.0, 20.0


@dataclass
class Voice:
    name: str
    enroll: list[tuple[str, np.ndarray]]  # recordings used for the profile
    tests: list[np.ndarray]  # held-apart recordings
    enrolled: bool = True  # False: never enrolled (fixture voices only)


@dataclass
class Trial:
    voice: str
    length_s: float
    embedding: np.ndarray


def speakers_dir() -> Path | None:
    audio = real_audio_dir()
    folder = audio / "pt_speakers" if audio is not None else None
    return folder if folder is not None and folder.is_dir() else None


def real_voices(folder: Path) -> list[Voice]:
    """Per speaker folder: recordings in name order until 10 s (cut at 20 s) enroll, the rest test."""
    voices = []
    for speaker in sorted(d for d in folder.iterdir() if d.is_dir()):
        files = sorted(speaker.glob("*.wav"))
        enroll, total = [], 0.0
        while files and total < ENROLL_MIN_S:
            path = files.pop(0)
            pcm = read_wav(path)[: int((ENROLL_MAX_S - total) * RATE)]
            enroll.append((path.name, pcm))
            total += pcm.size / RATE
        voices.append(Voice(speaker.name, enroll, [read_wav(f) for f in files]))
    return voices


def fixture_voices() -> list[Voice]:
    from balto.adapters.ffmpeg import decode_audio_file

    folder = FIXTURES / "speakers"
    manifest = json.loads((folder / "speakers.json").read_text())
    voices = []
    for name, entry in manifest.items():
        enroll = (
            [(f"{name}_enroll.opus", decode_audio_file(folder / f"{name}_enroll.opus"))] if entry["enrolled"] else []
        )
        voices.append(Voice(name, enroll, [decode_audio_file(folder / f"{name}_test.opus")], entry["enrolled"]))
    return voices


def load_voices(source: str) -> tuple[str, list[Voice]]:
    folder = speakers_dir() if source in ("auto", "real") else None
    if source == "real" and folder is None:
        raise FileNotFoundError("../shared/audio/pt_speakers is not present (set BALTO_REAL_AUDIO_DIR)")
    if folder is not None:
        return "real", real_voices(folder)
    return "fixtures", fixture_voices()


def cut(recording: np.ndarray, length_s: float) -> list[np.ndarray]:
    n = int(length_s * RATE)
    return [recording[i : i + n] for i in range(0, recording.size - n + 1, n)]


def enroll_all(enrollment, voices: Sequence[Voice]) -> dict[str, np.ndarray]:
    return {v.name: enrollment.embed_recordings(v.enroll).embedding for v in voices if v.enrolled}


def embed_trials(
    embedder,
    voices: Sequence[Voice],
    lengths: Sequence[float] = LENGTHS,
    snr_db: float | None = None,
    seed: int = 5,
    cleaner=None,
    costs: dict[float, list[float]] | None = None,
) -> tuple[list[Trial], float]:
    """Every held-apart segment embedded (noise mixed in at `snr_db`, then cleaned by `cleaner`, when
    given); returns the trials and the embedder's CPU ms per second of speech. `costs`, when given,
    collects the CPU ms of each segment by its length."""
    rng = np.random.default_rng(seed)
    noise = _noise(rng) if snr_db is not None else None
    trials, cpu_s, speech_s = [], 0.0, 0.0
    for voice in voices:
        for recording in voice.tests:
            for length in lengths:
                for segment in cut(recording, length):
                    if noise is not None:
                        segment = mix_at_snr(segment, noise, snr_db, rng)
                    if cleaner is not None:
                        segment = cleaner.clean(segment)
                    started = time.process_time()
                    embedding = embedder.embed(segment)
                    spent = time.process_time() - started
                    cpu_s += spent
                    if costs is not None:
                        costs.setdefault(length, []).append(1000 * spent)
                    speech_s += length
                    trials.append(Trial(voice.name, length, embedding))
    return trials, 1000 * cpu_s / max(speech_s, 1e-9)


def _noise(rng: np.random.Generator) -> np.ndarray:
    audio = real_audio_dir()
    if audio is not None and (audio / "noise" / "blanket_coffee-shop.wav").exists():
        return read_wav(audio / "noise" / "blanket_coffee-shop.wav")
    return _pink_noise(20.0, rng)


# -- decisions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    voice: str
    length_s: float
    known: bool  # the voice was enrolled in this trial
    predicted: str  # a voice name or desconhecido
    prob_true: float  # probability given to the right answer (the voice, or desconhecido)


def decide(enrolled: dict[str, np.ndarray], trials: Sequence[Trial], calibration: Calibration) -> list[Decision]:
    """Known trials against every enrolled voice; unknown trials with the voice left out (or never enrolled)."""
    names = list(enrolled)
    matrix = np.stack([enrolled[n] for n in names]).astype(np.float64)
    profiles = [SpeakerProfile(name=n, role="atendente", embedding=enrolled[n], id=n) for n in names]
    out = []
    for trial in trials:
        scores = matrix @ trial.embedding.astype(np.float64)
        for known in (True, False) if trial.voice in enrolled else (False,):
            keep = [i for i, n in enumerate(names) if known or n != trial.voice]
            candidates = sorted(((profiles[i], float(scores[i])) for i in keep), key=lambda c: -c[1])
            match = calibration.match(candidates, trial.length_s)
            truth = trial.voice if known else UNKNOWN
            prob = next((p.prob for p in match.probabilities if p.id == truth), 0.0)
            out.append(Decision(trial.voice, trial.length_s, known, str(match.top_id), prob))
    return out


def rates(
    decisions: Sequence[Decision], min_length: float = MIN_EVAL_S, voices: Sequence[str] | None = None
) -> tuple[float, float]:
    """(top-1 on known voices, share of unknown-voice segments that came out desconhecido), over
    segments of `min_length` and more, of `voices` only when given."""
    usable = [d for d in decisions if d.length_s >= min_length and (voices is None or d.voice in voices)]
    known = [d for d in usable if d.known]
    unknown = [d for d in usable if not d.known]
    top1 = sum(d.predicted == d.voice for d in known) / max(len(known), 1)
    rejected = sum(d.predicted == UNKNOWN for d in unknown) / max(len(unknown), 1)
    return top1, rejected


@dataclass
class Scores:
    """Trials reduced to what a threshold decision needs, for a fast search over thresholds."""

    own: np.ndarray  # known trials: score of the voice's own profile
    best_other: np.ndarray  # known trials: best score of another profile
    known_length: np.ndarray
    known_voice: list[str]
    unknown_best: np.ndarray  # unknown trials: best score with the voice left out
    unknown_length: np.ndarray
    unknown_voice: list[str]

    @classmethod
    def of(cls, enrolled: dict[str, np.ndarray], trials: Sequence[Trial]) -> Scores:
        names = list(enrolled)
        matrix = np.stack([enrolled[n] for n in names]).astype(np.float64)
        own, other, klen, kvoice, ubest, ulen, uvoice = [], [], [], [], [], [], []
        for trial in trials:
            if trial.length_s < MIN_EVAL_S:
                continue
            scores = matrix @ trial.embedding.astype(np.float64)
            if trial.voice in enrolled:
                i = names.index(trial.voice)
                rest = np.delete(scores, i)
                own.append(scores[i])
                other.append(rest.max() if rest.size else -1.0)
                klen.append(trial.length_s)
                kvoice.append(trial.voice)
                ubest.append(rest.max() if rest.size else -1.0)
            else:
                ubest.append(scores.max())
            ulen.append(trial.length_s)
            uvoice.append(trial.voice)
        return cls(np.array(own), np.array(other), np.array(klen), kvoice, np.array(ubest), np.array(ulen), uvoice)

    def rates(
        self, calibration: Calibration, exclude: str | None = None, only: str | None = None
    ) -> tuple[float, float]:
        known = np.array([(only is None or v == only) and v != exclude for v in self.known_voice], dtype=bool)
        unknown = np.array([(only is None or v == only) and v != exclude for v in self.unknown_voice], dtype=bool)
        thr_k = np.array([calibration.threshold_for(x) for x in self.known_length])
        thr_u = np.array([calibration.threshold_for(x) for x in self.unknown_length])
        right = (self.own > self.best_other) & (self.own > thr_k)
        rejected = self.unknown_best <= thr_u
        return float(right[known].mean()) if known.any() else 1.0, float(
            rejected[unknown].mean()
        ) if unknown.any() else 1.0

    def counts(self, calibration: Calibration, only: str) -> tuple[int, int, int, int]:
        known = np.array([v == only for v in self.known_voice], dtype=bool)
        unknown = np.array([v == only for v in self.unknown_voice], dtype=bool)
        thr_k = np.array([calibration.threshold_for(x) for x in self.known_length])
        thr_u = np.array([calibration.threshold_for(x) for x in self.unknown_length])
        right = (self.own > self.best_other) & (self.own > thr_k)
        rejected = self.unknown_best <= thr_u
        return int(right[known].sum()), int(known.sum()), int(rejected[unknown].sum()), int(unknown.sum())


def choose_threshold(
    scores: Scores, base: Calibration, exclude: str | None = None, slopes: Sequence[float] = (0.0, 0.02, 0.04, 0.06)
) -> tuple[Calibration, float, float]:
    """The (threshold, slope) that maximises min(top-1, rejection) on segments of 2 s and more; ties
    go to the larger sum of the two rates, then to the smaller slope (the simpler rule)."""
    best: tuple[tuple[float, float, float], Calibration, float, float] | None = None
    for slope in slopes:
        for threshold in np.arange(0.55, 0.85, 0.005):
            calibration = replace(base, threshold=round(float(threshold), 3), slope=slope)
            top1, rejected = scores.rates(calibration, exclude=exclude)
            key = (min(top1, rejected), top1 + rejected, -slope)
            if best is None or key > best[0]:
                best = (key, calibration, top1, rejected)
    assert best is not None
    return best[1], best[2], best[3]


def cross_validate(scores: Scores, voices: Sequence[str], base: Calibration) -> dict[str, float]:
    """Leave one speaker out: choose the threshold without that speaker's segments, score it on them."""
    totals = np.zeros(4)
    for held in voices:
        calibration, _, _ = choose_threshold(scores, base, exclude=held)
        totals += scores.counts(calibration, only=held)
    return {"top1": totals[0] / max(totals[1], 1), "unknown_rejected": totals[2] / max(totals[3], 1)}


def fit_temperature(enrolled: dict[str, np.ndarray], trials: Sequence[Trial], calibration: Calibration) -> Calibration:
    """The softmax temperature that minimises the negative log-likelihood of the right class."""
    usable = [t for t in trials if t.length_s >= MIN_EVAL_S]
    best = None
    for temperature in np.geomspace(0.005, 0.2, 41):
        candidate = replace(calibration, temperature=round(float(temperature), 4))
        nll = -np.mean([math.log(max(d.prob_true, 1e-12)) for d in decide(enrolled, usable, candidate)])
        if best is None or nll < best[0]:
            best = (nll, candidate)
    assert best is not None
    return best[1]


def confusion(decisions: Sequence[Decision], names: Sequence[str], min_length: float = MIN_EVAL_S) -> list[list[int]]:
    """Rows: each enrolled voice (known trials), then `desconhecido` (unknown trials); columns: the
    enrolled voices, then desconhecido."""
    columns = [*names, UNKNOWN]
    rows = [[0] * len(columns) for _ in range(len(names) + 1)]
    for d in decisions:
        if d.length_s < min_length:
            continue
        row = names.index(d.voice) if d.known else len(names)
        rows[row][columns.index(d.predicted)] += 1
    return rows


# -- clustering of unknown voices --------------------------------------------------------------------


def clustering_f1(trials: Sequence[Trial], threshold: float, group_size: int, seed: int = 11) -> float:
    """Mean F1 of purity and inverse purity when the segments (2 s and more) of `group_size` voices,
    shuffled together as one conversation, are clustered online."""
    rng = np.random.default_rng(seed)
    voices = sorted({t.voice for t in trials})
    scores = []
    for group in itertools.combinations(voices, group_size):
        conversation = [t for t in trials if t.voice in group and t.length_s >= MIN_EVAL_S]
        order = rng.permutation(len(conversation))
        clusters = UnknownVoices(threshold=threshold)
        labels = [(conversation[i].voice, clusters.assign(conversation[i].embedding)) for i in order]
        scores.append(_purity_f1(labels))
    return float(np.mean(scores))


def _purity_f1(labels: Sequence[tuple[str, int]]) -> float:
    def purity(pairs: Sequence[tuple[object, object]]) -> float:
        groups: dict[object, list[object]] = {}
        for key, value in pairs:
            groups.setdefault(key, []).append(value)
        return sum(max(vals.count(v) for v in set(vals)) for vals in groups.values()) / len(pairs)

    p = purity([(cluster, voice) for voice, cluster in labels])  # each cluster holds one voice
    r = purity(list(labels))  # each voice stays in one cluster
    return 2 * p * r / (p + r)


def choose_cluster_threshold(trials: Sequence[Trial]) -> tuple[float, dict[str, float]]:
    best = None
    for threshold in np.arange(0.60, 0.86, 0.01):
        f2, f3 = clustering_f1(trials, float(threshold), 2), clustering_f1(trials, float(threshold), 3)
        if best is None or (f2 + f3) > best[0]:
            best = (
                f2 + f3,
                round(float(threshold), 2),
                {"two_voices_f1": round(f2, 3), "three_voices_f1": round(f3, 3)},
            )
    assert best is not None
    return best[1], best[2]


# -- report ------------------------------------------------------------------------------------------


def per_length(decisions: Sequence[Decision]) -> list[dict[str, object]]:
    out = []
    for length in LENGTHS:
        known = [d for d in decisions if d.known and d.length_s == length]
        unknown = [d for d in decisions if not d.known and d.length_s == length]
        if not known and not unknown:
            continue
        out.append(
            {
                "segment_s": length,
                "known_segments": len(known),
                "top1": round(sum(d.predicted == d.voice for d in known) / max(len(known), 1), 3),
                "unknown_segments": len(unknown),
                "unknown_rejected": round(sum(d.predicted == UNKNOWN for d in unknown) / max(len(unknown), 1), 3),
            }
        )
    return out


def load_embedder(name: str, model: str | None, partial_rate: float | None = None):
    """The encoder the server would load for SPEAKER_EMBEDDER=name and SPEAKER_MODEL=model
    (`partial_rate`: Resemblyzer's partial windows per second, to measure another overlap)."""
    if name == "speechbrain":
        from balto.adapters.speechbrain import DEFAULT_MODEL, load_speechbrain

        return load_speechbrain(model or DEFAULT_MODEL, Path.home() / ".cache" / "balto" / "models")
    from balto.adapters.resemblyzer import PARTIAL_RATE, load_resemblyzer

    return load_resemblyzer(Path(model) if model else None, threads=1, partial_rate=partial_rate or PARTIAL_RATE)


def run(
    source: str = "auto",
    snr_db: float | None = None,
    choose: bool = True,
    clean: bool = False,
    embedder_name: str = "resemblyzer",
    model: str | None = None,
    cleaner_padding: int = NOISEREDUCE_PADDING,
    partial_rate: float | None = None,
) -> dict[str, object]:
    from balto.adapters.webrtc_vad import WebRtcSpeechDetector
    from balto.app.settings import SPEAKER_DEFAULTS
    from balto.app.speakers import Enrollment

    embedder = load_embedder(embedder_name, model, partial_rate)
    kind, voices = load_voices(source)
    enrollment = Enrollment(embedder, profiles=None, new_detector=lambda: WebRtcSpeechDetector(2))  # type: ignore[arg-type]
    enrolled = enroll_all(enrollment, voices)
    cleaner = None
    if clean:
        from balto.adapters.noisereduce_cleaner import NoiseReduceCleaner

        cleaner = NoiseReduceCleaner(padding=cleaner_padding)
    costs: dict[float, list[float]] = {}
    trials, cpu_ms_per_s = embed_trials(embedder, voices, snr_db=snr_db, cleaner=cleaner, costs=costs)
    # The server's defaults for this encoder (SPEAKER_UNKNOWN_THRESHOLD and the rest unset).
    preset = SPEAKER_DEFAULTS[embedder_name]
    defaults = Calibration(threshold=preset["threshold"], slope=preset["slope"], temperature=preset["temperature"])
    cluster_threshold = preset["cluster"]
    result: dict[str, object] = {
        "embedder": embedder.name,
        "source": kind,
        "voices": {
            v.name: {"enrolled": v.enrolled, "enroll_s": round(sum(p.size for _, p in v.enroll) / RATE, 1)}
            for v in voices
        },
        "snr_db": snr_db,
        "cleaned": clean,
        "partial_rate": getattr(embedder, "partial_rate", None),
        "cpu_ms_per_speech_s": round(cpu_ms_per_s, 1),
        "cpu_ms_per_segment": {
            f"{length:g} s": {"median": round(float(np.median(v)), 1), "p95": round(float(np.percentile(v, 95)), 1)}
            for length, v in sorted(costs.items())
        },
        "default_calibration": asdict(defaults),
    }
    if choose:
        scores = Scores.of(enrolled, trials)
        chosen, top1, rejected = choose_threshold(scores, defaults)
        chosen = fit_temperature(enrolled, trials, chosen)
        flat, flat_top1, flat_rejected = choose_threshold(scores, defaults, slopes=(0.0,))
        cluster_threshold, cluster_scores = choose_cluster_threshold([t for t in trials if t.voice in enrolled])
        result["chosen"] = {
            "calibration": asdict(chosen),
            "top1": round(top1, 3),
            "unknown_rejected": round(rejected, 3),
            "cross_validated": {
                k: round(v, 3) for k, v in cross_validate(scores, sorted({v.name for v in voices}), defaults).items()
            },
            "cluster_threshold": cluster_threshold,
            "clustering": cluster_scores,
            "best_flat_threshold": {
                "threshold": flat.threshold,
                "top1": round(flat_top1, 3),
                "unknown_rejected": round(flat_rejected, 3),
                "per_length": per_length(decide(enrolled, trials, flat)),
            },
        }
    decisions = decide(enrolled, trials, defaults)
    top1, rejected = rates(decisions)
    names = list(enrolled)
    never = [v.name for v in voices if not v.enrolled]
    known_trials = [t for t in trials if t.voice in enrolled]
    result["with_defaults"] = {
        "top1": round(top1, 3),
        "unknown_rejected": round(rejected, 3),
        "never_enrolled_rejected": round(rates(decisions, voices=never)[1], 3) if never else None,
        "per_length": per_length(decisions),
        "confusion": {"rows": [*names, UNKNOWN], "columns": [*names, UNKNOWN], "counts": confusion(decisions, names)},
        "cluster_threshold": cluster_threshold,
        "clustering": {
            "two_voices_f1": round(clustering_f1(known_trials, cluster_threshold, 2), 3),
            "three_voices_f1": round(clustering_f1(known_trials, cluster_threshold, 3), 3),
        },
    }
    return result


def print_report(result: dict[str, object]) -> None:
    noise = f"coffee-shop noise at {result['snr_db']:g} dB SNR" if result["snr_db"] is not None else "no noise"
    print(f"encoder: {result['embedder']}")
    print(f"voices: {result['source']}, test segments with {noise}{', cleaned' if result['cleaned'] else ''}")
    for name, voice in result["voices"].items():  # type: ignore[attr-defined]
        how = f"enrolled from {voice['enroll_s']} s" if voice["enrolled"] else "never enrolled"
        print(f"  {name:>8}  {how}")
    print(f"cost: {result['cpu_ms_per_speech_s']} CPU ms per second of speech (one thread); per segment:")
    for length, cost in result["cpu_ms_per_segment"].items():  # type: ignore[attr-defined]
        print(f"  {length:>6}: median {cost['median']} ms, p95 {cost['p95']} ms")
    defaults = result["with_defaults"]
    print(f"\nwith the default calibration {result['default_calibration']}:")  # type: ignore[index]
    print(
        f"  segments >= {MIN_EVAL_S:g} s: top-1 {defaults['top1']:.1%}, "  # type: ignore[index]
        f"voice left out -> {UNKNOWN} {defaults['unknown_rejected']:.1%}"  # type: ignore[index]
    )
    if defaults["never_enrolled_rejected"] is not None:  # type: ignore[index]
        print(f"  never-enrolled voices -> {UNKNOWN} {defaults['never_enrolled_rejected']:.1%}")  # type: ignore[index]
    print("  per segment length:")
    for row in defaults["per_length"]:  # type: ignore[index]
        print(
            f"    {row['segment_s']:>4g} s  top-1 {row['top1']:.1%} of {row['known_segments']:>3}   "
            f"{UNKNOWN} {row['unknown_rejected']:.1%} of {row['unknown_segments']:>3}"
        )
    matrix = defaults["confusion"]  # type: ignore[index]
    width = max(len(c) for c in matrix["columns"]) + 1
    print(f"  confusion matrix, segments >= {MIN_EVAL_S:g} s (rows: true voice; last row: voices left out):")
    print("    " + " " * width + "".join(f"{c:>{width}}" for c in matrix["columns"]))
    for name, counts in zip(matrix["rows"], matrix["counts"], strict=True):
        print("    " + f"{name:>{width}}" + "".join(f"{n:>{width}}" for n in counts))
    print(
        f"  unknown voices told apart, cluster threshold {defaults['cluster_threshold']} (F1): {defaults['clustering']}"
    )  # type: ignore[index]
    if "chosen" in result:
        chosen = result["chosen"]
        print(f"\nchosen by measurement: {chosen['calibration']}")  # type: ignore[index]
        print(f"  fitted: top-1 {chosen['top1']:.1%}, {UNKNOWN} {chosen['unknown_rejected']:.1%}")  # type: ignore[index]
        cv = chosen["cross_validated"]  # type: ignore[index]
        print(
            f"  leave-one-speaker-out cross-validated: top-1 {cv['top1']:.1%}, {UNKNOWN} {cv['unknown_rejected']:.1%}"
        )
        print(f"  cluster threshold {chosen['cluster_threshold']}: {chosen['clustering']}")  # type: ignore[index]
        flat = chosen["best_flat_threshold"]  # type: ignore[index]
        print(
            f"  for comparison, the best threshold flat in duration, {flat['threshold']}: top-1 {flat['top1']:.1%}, "
            f"{UNKNOWN} {flat['unknown_rejected']:.1%}; per length: "
            + ", ".join(f"{r['segment_s']:g} s {r['top1']:.1%}/{r['unknown_rejected']:.1%}" for r in flat["per_length"])
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="auto", choices=("auto", "real", "fixtures"))
    parser.add_argument("--embedder", default="resemblyzer", choices=("resemblyzer", "speechbrain"))
    parser.add_argument("--model", default=None, help="as SPEAKER_MODEL: weights file, model dir or hub id")
    parser.add_argument("--snr", type=float, default=None, help="mix coffee-shop noise into the test segments")
    parser.add_argument("--clean", action="store_true", help="run the noise cleaner on the test segments first")
    parser.add_argument(
        "--cleaner-padding",
        type=int,
        default=NOISEREDUCE_PADDING,
        help="zeros the cleaner pads each segment with, each side (default: the server's, %(default)s)",
    )
    parser.add_argument(
        "--partial-rate",
        type=float,
        default=None,
        help="Resemblyzer's 1.6 s partial windows per second (the server's 1.3 by default; 0.625: no overlap)",
    )
    parser.add_argument("--no-choose", action="store_true", help="only evaluate the default calibration")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = run(
        args.source,
        args.snr,
        not args.no_choose,
        args.clean,
        args.embedder,
        args.model,
        args.cleaner_padding,
        args.partial_rate,
    )
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
