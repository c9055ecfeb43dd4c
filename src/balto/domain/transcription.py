"""Whisper hallucination rules: was a decoded segment really said, cut short, or invented?

Whisper invents text on noise, music and near-silence: single syllables ("A"), plausible sentences
("O que é isso?"), endless loops ("o que é o que é o que é ...") and, in Portuguese, the subtitle
phrases it learnt from video credits ("Obrigado.", "Legendas pela comunidade Amara.org"). Everything
here is pure: given what the model reports for each segment and what the audio itself shows, a
segment is kept, has its loop cut out, or is dropped, always with a reason to log.

The thresholds were measured with the packaged Whisper base (int8, beam 1, temperature 0, language
pt) on the shared real noise (cafe, city street, white and pink noise), on synthesised noise and
chords, and on real and espeak-ng Portuguese speech:

- noise and music: no_speech_prob 0.55-0.80; the non-loop inventions have avg_logprob -1.5 to -3.5;
  the loops are decoded with avg_logprob near -0.1 (the model is sure of its own repetition) but a
  compression ratio near 18-20;
- speech (clean or with cafe/city noise at 5-10 dB SNR): no_speech_prob <= 0.39, avg_logprob >= -1.5,
  compression ratio <= 1.1.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 480  # 30 ms, the VAD's frame

# Whisper's own "this window is silence" rule (its no_speech_threshold and logprob_threshold): the
# model thinks there is no speech AND is unsure of the words it produced.
NO_SPEECH_PROB = 0.6
LOW_AVG_LOGPROB = -1.0
# A second tier Whisper lacks: slightly less no-speech evidence, but words the model barely believes.
# Measured: "O que é isso?" on city noise came out at 0.55 / -1.48, under Whisper's 0.6; a real but
# very quiet "Obrigado" at 0.51 / -1.06 stays above -1.3 and is kept by this rule.
NO_SPEECH_PROB_UNSURE = 0.5
VERY_LOW_AVG_LOGPROB = -1.3
# Whisper's compression_ratio_threshold: gzip finds the text too repetitive to be speech.
COMPRESSION_RATIO = 2.4
# A loop decoded on audio that the model itself probably takes for no speech is noise: drop it whole
# rather than keep its first turn ("Eu não sei o que é" from chords).
LOOP_NO_SPEECH_PROB = 0.5
# Weak audio evidence, which alone lets a known phantom phrase be dropped.
PHANTOM_NO_SPEECH_PROB = 0.5  # more likely no speech than speech; real "Obrigado"s measured <= 0.39
LOW_ENERGY_DBFS = -45.0  # loudness of the segment's loud frames; a counter microphone hears speech at -35 to -20
# Nobody says more than ~12 syllables a second; text that needs longer than the audio lasts was not said.
SECONDS_PER_SYLLABLE = 0.08
# Frames within this many dB of the loudest one carry the sound; their total is the "active" time.
ACTIVE_FRAME_DB = 15.0

# Phrases Whisper is known to produce on non-speech in Portuguese (subtitle credits and video
# endings from its training data). Matched on the whole segment, after normalisation (lower case,
# no accents or punctuation). Some are also real counter talk ("obrigado", "tchau"): a phrase here
# is only dropped when the audio evidence is weak, never for being on the list.
PHANTOM_PHRASES: frozenset[str] = frozenset(
    {
        "obrigado",
        "obrigada",
        "muito obrigado",
        "muito obrigada",
        "obrigado obrigado",
        "obrigado por assistir",
        "obrigada por assistir",
        "obrigado por assistirem",
        "obrigado pela atencao",
        "tchau",
        "tchau tchau",
        "tchau gente",
        "valeu",
        "ate a proxima",
        "ate logo",
        "ate mais",
        "legendas pela comunidade amara org",
        "legendas pela comunidade amara",
        "legendado por",
        "legendas por",
        "traducao e legendas",
        "legendas em portugues",
        "inscreva se",
        "inscreva se no canal",
        "se inscreva no canal",
        "nao esqueca de se inscrever",
        "deixe seu like",
        "ative o sininho",
        "e ai",
        "sous titres realises para la communaute d amara org",
        "subtitles by the amara org community",
    }
)


class Suppression(StrEnum):
    """Why a segment's text was dropped or shortened."""

    NO_SPEECH = "no_speech"  # the model says there is no speech and is unsure of its words
    REPETITION_LOOP = "repetition_loop"  # a loop on audio the model takes for no speech
    COMPRESSION_RATIO = "compression_ratio"  # too repetitive to be speech, and no loop to cut out
    TOO_FAST = "too_fast"  # more syllables than the audio could hold
    PHANTOM_PHRASE = "phantom_phrase"  # a known invented phrase, on weak audio evidence
    LOOP_CUT = "loop_cut"  # kept, with the repetition after its first turn cut off


@dataclass(frozen=True)
class DecodedSegment:
    """What Whisper (local or served) reports for one decoded segment; None where unknown."""

    text: str
    no_speech_prob: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None


@dataclass(frozen=True)
class AudioEvidence:
    """What the audio itself says, independent of the model."""

    duration_s: float
    loud_dbfs: float  # level of the loud frames (90th percentile of 30 ms frame RMS), dBFS
    active_s: float  # time in frames within ACTIVE_FRAME_DB of the loudest frame

    @classmethod
    def of(cls, pcm: np.ndarray, rate: int = SAMPLE_RATE) -> AudioEvidence:
        samples = np.asarray(pcm, dtype=np.float64)
        duration = samples.size / rate
        frames = samples[: samples.size - samples.size % FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
        if frames.size == 0:
            return cls(duration, -120.0, 0.0)
        rms = np.sqrt(np.mean(frames**2, axis=1))
        loud = float(np.percentile(rms, 90))
        peak = float(rms.max())
        active = int(np.count_nonzero(rms >= peak * 10 ** (-ACTIVE_FRAME_DB / 20))) if peak > 0 else 0
        return cls(duration, _dbfs(loud), active * FRAME_SAMPLES / rate)


@dataclass(frozen=True)
class Verdict:
    """The outcome for one segment: the text to keep ("" when dropped) and why it changed."""

    text: str
    reason: Suppression | None = None
    detail: str = ""

    @property
    def dropped(self) -> bool:
        return self.reason is not None and not self.text


def judge_segment(segment: DecodedSegment, audio: AudioEvidence) -> Verdict:
    """Keep, cut or drop one decoded segment. The rules, in order:

    1. model signals: no_speech_prob >= 0.6 with avg_logprob <= -1.0 (Whisper's own silence rule),
       or no_speech_prob >= 0.5 with avg_logprob <= -1.3 -> drop (no_speech);
    2. repetition: a phrase of 1-20 words repeated back to back (4+ times for one word, 3+ for more)
       or a compression ratio above 2.4 -> drop the whole segment when no_speech_prob >= 0.5
       (repetition_loop), else keep the text up to the loop's first turn (loop_cut); a text still
       too repetitive after the cut is dropped (compression_ratio);
    3. the text needs more time than the audio lasts at 12.5 syllables a second -> drop (too_fast);
    4. the whole text is a known phantom phrase (or one repeated) AND the audio evidence is weak (no_speech_prob >= 0.5,
       loud frames under -45 dBFS, or less active sound than the phrase needs) -> drop
       (phantom_phrase). A clear "Obrigado." is kept.
    """
    text = " ".join(segment.text.split())
    if not text:
        return Verdict("")
    nsp = segment.no_speech_prob if segment.no_speech_prob is not None else 0.0
    logprob = segment.avg_logprob if segment.avg_logprob is not None else 0.0
    signals = f"no_speech_prob={nsp:.2f} avg_logprob={logprob:.2f}"

    if (nsp >= NO_SPEECH_PROB and logprob <= LOW_AVG_LOGPROB) or (
        nsp >= NO_SPEECH_PROB_UNSURE and logprob <= VERY_LOW_AVG_LOGPROB
    ):
        return Verdict("", Suppression.NO_SPEECH, signals)

    reason: Suppression | None = None
    detail = ""
    ratio = segment.compression_ratio if segment.compression_ratio is not None else compression_ratio(text)
    cut = cut_repetition_loop(text)
    if cut != text or ratio > COMPRESSION_RATIO:
        looped = f"{signals} compression_ratio={ratio:.2f}"
        if nsp >= LOOP_NO_SPEECH_PROB:
            return Verdict("", Suppression.REPETITION_LOOP, looped)
        if compression_ratio(cut) > COMPRESSION_RATIO:
            return Verdict("", Suppression.COMPRESSION_RATIO, looped)
        if cut != text:
            reason, detail = Suppression.LOOP_CUT, f"{looped}, {len(text.split())} -> {len(cut.split())} words"
            text = cut

    needed = min_duration_s(text)
    if audio.duration_s < needed:
        return Verdict("", Suppression.TOO_FAST, f"{needed:.2f} s of speech in {audio.duration_s:.2f} s of audio")

    if is_phantom_phrase(text):
        weak = _weak_evidence(nsp, audio, needed)
        if weak:
            return Verdict("", Suppression.PHANTOM_PHRASE, f"{signals}; weak evidence: {', '.join(weak)}")

    return Verdict(text, reason, detail)


def judge_segments(segments: Sequence[DecodedSegment], audio: AudioEvidence) -> list[Verdict]:
    return [judge_segment(segment, audio) for segment in segments]


def is_phantom_phrase(text: str) -> bool:
    """The whole text is a known phantom phrase, said once or repeated back to back ("E aí? E aí?")."""
    words = normalize_phrase(text).split()
    for size in range(1, len(words) + 1):
        if len(words) % size:
            continue
        unit = words[:size]
        if " ".join(unit) in PHANTOM_PHRASES and words == unit * (len(words) // size):
            return True
    return False


def _weak_evidence(no_speech_prob: float, audio: AudioEvidence, needed_s: float) -> list[str]:
    weak = []
    if no_speech_prob >= PHANTOM_NO_SPEECH_PROB:
        weak.append(f"no_speech_prob {no_speech_prob:.2f}")
    if audio.loud_dbfs < LOW_ENERGY_DBFS:
        weak.append(f"level {audio.loud_dbfs:.1f} dBFS")
    if audio.active_s < needed_s:
        weak.append(f"{audio.active_s:.2f} s of sound for {needed_s:.2f} s of words")
    return weak


# -- text helpers --------------------------------------------------------------------------------

_VOWEL_GROUPS = re.compile(r"[aeiouyáéíóúâêôãõàèìòùäëïöü]+", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w\s]", re.UNICODE)


def compression_ratio(text: str) -> float:
    """Whisper's measure of repetitiveness: UTF-8 length over zlib-compressed length."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def syllables(text: str) -> int:
    """Vowel groups per word, at least one per word; each digit counts as one (a lower bound)."""
    total = 0
    for word in text.split():
        groups = len(_VOWEL_GROUPS.findall(word)) + sum(ch.isdigit() for ch in word)
        total += max(groups, 1) if any(ch.isalnum() for ch in word) else 0
    return total


def min_duration_s(text: str) -> float:
    return syllables(text) * SECONDS_PER_SYLLABLE


def normalize_phrase(text: str) -> str:
    """Lower case, accents and punctuation removed, single spaces: how phantom phrases are matched."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", plain).replace("_", " ").split())


def _word_key(word: str) -> str:
    return normalize_phrase(word)


def cut_repetition_loop(text: str, max_unit: int = 20) -> str:
    """Text with every run of a repeated phrase cut back to its first turn.

    A run is a phrase of 1..max_unit words repeated back to back at least 4 times (one word: "não,
    não, não" is real speech) or 3 times (longer phrases). A trailing unfinished turn ("o que é o qu")
    goes with the run. Text after the run is kept. A phrase can be a whole sentence: on a segment
    longer than its window Whisper decodes the last sentence and then says it again until its token
    budget runs out, and those words were said once.
    """
    words = text.split()
    keys = [_word_key(w) for w in words]
    i = 0
    while i < len(words):
        for n in range(1, max_unit + 1):
            if i + 2 * n > len(words):
                break
            unit = keys[i : i + n]
            if not any(unit):
                continue
            repeats = 1
            while keys[i + repeats * n : i + (repeats + 1) * n] == unit:
                repeats += 1
            if repeats < (4 if n == 1 else 3):
                continue
            end = i + repeats * n
            end += _unfinished_turn(keys[end:], unit)
            words = words[: i + n] + words[end:]
            keys = keys[: i + n] + keys[end:]
            break
        i += 1
    return " ".join(words)


def _unfinished_turn(rest: list[str], unit: list[str]) -> int:
    """len(rest) when `rest` ends the text with the start of one more, cut-off, turn of `unit`
    ("o qu" after "o que é" x N: the decoder ran out of tokens mid-turn), else 0."""
    if not rest or len(rest) >= len(unit):
        return 0
    *whole, last = rest
    if whole != unit[: len(whole)] or not last or not unit[len(whole)].startswith(last):
        return 0
    return len(rest)


def _dbfs(rms: float) -> float:
    return 20 * math.log10(rms / 32768) if rms > 0 else -120.0


# -- languages -----------------------------------------------------------------------------------

_LANGUAGE_NAMES = {
    "portuguese": "pt",
    "por": "pt",
    "english": "en",
    "eng": "en",
    "spanish": "es",
    "spa": "es",
    "french": "fr",
    "fra": "fr",
    "german": "de",
    "deu": "de",
    "italian": "it",
    "ita": "it",
}


def normalize_language(code: str | None) -> str | None:
    """Vendors answer "pt", "pt_br", "por" or "portuguese"; transcripts carry the ISO 639-1 code."""
    if not code:
        return None
    lowered = code.strip().lower().replace("-", "_")
    base = lowered.split("_")[0]
    return _LANGUAGE_NAMES.get(lowered) or _LANGUAGE_NAMES.get(base) or base


# -- packing several segments into one Whisper window ----------------------------------------------
#
# Whisper's encoder always sees a 30 s window: a 3 s segment costs as much to encode as a 30 s one
# (on this project's 2-core machine about 1.8 CPU-s of the 2.4 a short segment costs). When several
# segments (from any connections) wait at once, they are laid end to end with a gap of silence in one
# window, transcribed once with word timestamps, and each word goes back to the segment it was said in.

PACK_GAP_S = 1.0  # silence between packed segments: Whisper starts a new segment across it
PACK_MAX_S = 28.0  # keep clear of the 30 s edge, where Whisper cuts words


@dataclass(frozen=True)
class PackedWord:
    text: str
    start_s: float  # in the packed window's timeline
    end_s: float
    segment_index: int  # which of Whisper's own segments it belongs to


def pack_offsets(durations_s: Sequence[float], gap_s: float = PACK_GAP_S, max_s: float = PACK_MAX_S) -> list[float]:
    """Start of each segment in the packed window, for as many of `durations_s` as fit (at least one)."""
    offsets: list[float] = []
    cursor = 0.0
    for duration in durations_s:
        if offsets and cursor + duration > max_s:
            break
        offsets.append(cursor)
        cursor += duration + gap_s
    return offsets


def split_packed_words(words: Sequence[PackedWord], spans: Sequence[tuple[float, float]]) -> list[list[PackedWord]]:
    """The words said in each packed span: a word goes to the span holding its midpoint, or, when it
    falls in a gap (timestamps drift by a few tens of ms), to the nearest span."""
    out: list[list[PackedWord]] = [[] for _ in spans]
    for word in words:
        middle = (word.start_s + word.end_s) / 2
        best = min(
            range(len(spans)),
            key=lambda i: (
                0.0
                if spans[i][0] <= middle <= spans[i][1]
                else min(abs(middle - spans[i][0]), abs(middle - spans[i][1]))
            ),
        )
        out[best].append(word)
    return out
