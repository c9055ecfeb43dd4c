"""A counter's connection after the handshake: decode -> VAD -> transcribe -> playbook -> buffer -> LLM -> store.

This is the application service. It speaks only to ports, so unit tests drive it with in-memory
fakes and the production wiring hands it the real adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from balto.domain.audio import AudioFormat
from balto.domain.buffer import BufferAction, BufferDecision, BufferLine, ConversationBuffer
from balto.domain.conversation import DEFAULT_END_SILENCE_S, Conversation
from balto.domain.interaction import (
    Feedback,
    IaStatus,
    Interaction,
    RecommendationRequest,
    RecommendationResult,
    Suggestion,
    Transcript,
)
from balto.domain.playbook import ChecklistItem
from balto.domain.speaker import SpeakerMatch, Voice
from balto.domain.vad import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    EarlyStartTiming,
    Segmenter,
    SegmenterConfig,
    SpeechGatePolicy,
    SpeechSegment,
    SpeechTrack,
    VadPolicy,
)
from balto.ports.audio import AudioCleaner, AudioDecoder, DecodeError, SpeechDetector
from balto.ports.inference import (
    Recommender,
    SpeakerIdentifier,
    SpeechGate,
    SpeechStream,
    Transcriber,
    TranscriptionError,
)
from balto.ports.storage import FeedbackRepository, InteractionRepository
from balto.ports.system import Clock

log = logging.getLogger(__name__)

HISTORY_LINES = 20  # earlier lines of the conversation given to the LLM as context


@dataclass(frozen=True)
class TranscriptEvent:
    interaction_uuid: str
    text: str
    start_s: float
    end_s: float
    speaker: str | None = None  # the role label the LLM sees ("Atendente", "Cliente")
    match: SpeakerMatch | None = None


@dataclass(frozen=True)
class RecommendationEvent:
    interaction_uuid: str
    suggestions: tuple[Suggestion, ...]
    origin: str = "llm"  # "llm" or "playbook"


@dataclass(frozen=True)
class ChecklistEvent:
    conversation_id: str
    items: tuple[tuple[ChecklistItem, bool], ...]  # every item, in the playbook's order, and whether it is done
    interaction_uuid: str | None = None  # the cycle whose speech ticked an item; None at start-up or end
    ended: bool = False  # the conversation is over: this is its final state


SessionEvent = TranscriptEvent | RecommendationEvent | ChecklistEvent
Emit = Callable[[SessionEvent], Awaitable[None]]


@dataclass
class PipelineDeps:
    """What every session shares: the long-lived adapters, built once per process by the container."""

    transcriber: Transcriber
    interactions: InteractionRepository
    clock: Clock
    new_detector: Callable[[], SpeechDetector]
    new_decoder: Callable[[AudioFormat], AudioDecoder]
    recommender: Recommender | None = None  # the LLM, fired by the buffer's rules
    instant: Recommender | None = None  # the playbook, asked on every transcript before the buffer
    checklist: tuple[ChecklistItem, ...] = ()
    feedback: FeedbackRepository | None = None
    conversation_end_silence_s: float = DEFAULT_END_SILENCE_S
    cleaner: AudioCleaner | None = None  # cleans segments before transcription (AUDIO_CLEANER=on)
    speech_gate: SpeechGate | None = None  # a speech model's second opinion on each VAD segment
    speech_gate_policy: SpeechGatePolicy = field(default_factory=SpeechGatePolicy)
    new_speaker_identifier: Callable[[], SpeakerIdentifier] | None = None  # one per connection
    # A speech model over each connection's whole stream (one per connection): a frame the VAD hears
    # as speech after `segmenter_config.pause_gate_ms` of silence ends the pause only if this model
    # hears a voice there too (probability >= `pause_gate_threshold`). None: the VAD alone.
    new_speech_stream: Callable[[], SpeechStream] | None = None
    pause_gate_threshold: float = 0.05
    segmenter_config: SegmenterConfig = field(default_factory=SegmenterConfig)
    language: str | None = "pt"
    tick_s: float = 0.25
    segment_queue_size: int = 16
    llm_grace_s: float = 30.0
    # Whether a segment may be heard (gate, transcription, voice) before the VAD closes it, now: set
    # for a local transcriber, true while one of its workers is free. None: never.
    early_start: Callable[[], bool] | None = None
    # When in the pause to start (EarlyStartTiming, shared by every counter); None: at the offer.
    early_timing: EarlyStartTiming | None = None
    # When in the pause an early hearing asks for the speaker's voice: about when it would end by
    # the close, measured like the hearing. The voice of a hearing that speech breaks first is never
    # worked out. None: with the transcription, at the hearing's start.
    voice_timing: EarlyStartTiming | None = None


# Audio the speech stream is handed at once, unless a verdict is wanted sooner: one model call per
# piece (90 ms) cost 0.008 CPU-s per audio-s, 0.0045 in calls of half a second (the model's own work
# is the same; the rest is each call's overhead).
STREAM_BATCH_SAMPLES = SAMPLE_RATE // 2


class StreamFeed:
    """Feeds a connection's pieces to its `SpeechStream` in calls of `batch_samples` (or at once, when
    a verdict is wanted now) and keeps the model's verdicts (`SpeechTrack`) in stream order."""

    def __init__(self, stream: SpeechStream, threshold: float, batch_samples: int = STREAM_BATCH_SAMPLES) -> None:
        self._stream = stream
        self._track = SpeechTrack(stream.window_samples, threshold)
        self._batch_samples = batch_samples
        self._unfed: list[np.ndarray] = []
        self._unfed_samples = 0
        self._pending: deque[Future[np.ndarray]] = deque()  # calls made, their verdicts not read yet
        self.samples = 0  # samples pushed so far

    def push(self, pcm: np.ndarray, now: bool = False) -> int:
        """Queues the next piece of the stream and returns the stream sample it starts at; the queued
        audio goes to the model once there is a batch of it, or `now`."""
        first = self.samples
        self.samples += pcm.size
        self._unfed.append(pcm)
        self._unfed_samples += pcm.size
        if now or self._unfed_samples >= self._batch_samples:
            self._feed()
        self._read(wait=False)
        return first

    def heard(self, first_sample: int, frames: int) -> list[bool]:
        """The model's verdict on `frames` frames from `first_sample` (`SpeechTrack.heard`), once every
        call made so far has answered (it waits for them)."""
        self._read(wait=True)
        return self._track.heard(first_sample, frames)

    async def probabilities(self, first_sample: int, end_sample: int) -> np.ndarray | None:
        """The model's probabilities for the windows over samples [first_sample, end_sample) of the
        stream, pushed already: the audio still queued goes to the model now if the span reaches
        it, and this waits for the calls made so far. None when the span is no longer kept."""
        if self._unfed_samples and end_sample > self.samples - self._unfed_samples:
            self._feed()
        await self.settle()
        return self._track.probabilities(first_sample, end_sample)

    async def settle(self) -> None:
        """Waits for the model's calls made so far and reads their verdicts (then `heard` does not
        block). One thread, in order: once the last call is done, so are the earlier ones. Shielded:
        the caller (an early hearing) may be cancelled while it waits, and a call cancelled before it
        ran would leave a gap in the stream."""
        if self._pending:
            await asyncio.shield(asyncio.wrap_future(self._pending[-1]))
        self._read(wait=False)

    def _feed(self) -> None:
        batch = self._unfed[0] if len(self._unfed) == 1 else np.concatenate(self._unfed)
        self._unfed, self._unfed_samples = [], 0
        self._pending.append(self._stream.feed(batch))

    def _read(self, wait: bool) -> None:
        while self._pending and (wait or self._pending[0].done()):
            self._track.extend(self._pending.popleft().result())


@dataclass
class _Heard:
    """What the models made of one segment's audio. Nothing in it depends on the connection's state,
    so it can be worked out before the segment closes and thrown away if speech comes back."""

    requested_at: float
    answered_at: float | None = None
    gate: Transcript | None = None  # the speech gate heard no speech; nothing else ran
    transcript: Transcript | None = None
    stt_error: str | None = None
    voice: Voice | None = None


@dataclass
class _Early:
    """A segment being heard before it closed: `key` is its (start_s, end_s)."""

    key: tuple[float, float]
    task: asyncio.Task[_Heard]
    voice_go: asyncio.Event | None = None  # set when the voice may be worked out (None: at once)


@dataclass
class _ClosedSegment:
    segment: SpeechSegment
    closed_at: float
    heard: asyncio.Task[_Heard] | None = None  # started early, on exactly this audio


class CounterSession:
    """One counter connection. Call `start()`, then `feed()` binary frames, then `finish()`.

    Every segment the VAD cuts becomes one interaction row, in order; an LLM call fired by the timer
    rather than by a segment gets a row of its own. At most one LLM call is in flight; text that
    arrives meanwhile waits in the buffer for the next trigger. A reply that arrives after the client
    left is stored but not sent.

    Each transcript goes to the playbook first (instant, its card goes out at once) and ticks the
    checklist, then to the buffer. Speech belongs to a conversation, which ends after
    `conversation_end_silence_s` of silence or when the connection closes; a new one starts with a
    fresh checklist, no cards shown and no LLM history. A card text is never shown twice in a
    conversation, whichever recommender suggested it.
    """

    def __init__(
        self,
        deps: PipelineDeps,
        *,
        balcao_id: str,
        conexao_id: str,
        policy: VadPolicy,
        audio_format: AudioFormat,
        emit: Emit,
        want_transcripts: bool = False,
    ) -> None:
        self._deps = deps
        self.balcao_id = balcao_id
        self.conexao_id = conexao_id
        self.policy = policy
        self._emit_to_client = emit
        self.want_transcripts = want_transcripts
        self.connected_at = deps.clock.now()  # for the console's list of connected counters
        self._decoder = deps.new_decoder(audio_format)
        self._detector = deps.new_detector()
        self._segmenter = Segmenter(policy=policy, config=deps.segmenter_config)
        new_stream = deps.new_speech_stream if deps.segmenter_config.pause_gate_ms else None
        self._stream_feed = StreamFeed(new_stream(), deps.pause_gate_threshold) if new_stream is not None else None
        self._speakers = deps.new_speaker_identifier() if deps.new_speaker_identifier is not None else None
        self._buffer = ConversationBuffer(created_at=deps.clock.now())
        self._segments: asyncio.Queue[_ClosedSegment | None] = asyncio.Queue(deps.segment_queue_size)
        self._carry = np.zeros(0, dtype=np.int16)
        self._history: list[BufferLine] = []
        self._conversation: Conversation | None = None
        self._last_voice_end: float | None = None  # end of the latest segment the VAD closed
        self._interaction_uuids: set[str] = set()
        self._llm_task: asyncio.Task[None] | None = None
        self._early: _Early | None = None
        self._offer: SpeechSegment | None = None  # offered early, not started yet (no free worker, not due)
        self.early_started = self.early_used = 0  # segments heard before they closed, and those kept
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._finishing = False
        self.connected = True
        self.stored = 0
        self.audio_s = 0.0  # seconds of audio decoded so far (the hub's WS_MAX_AUDIO_AHEAD_S)
        self.error: DecodeError | None = None
        self.failed = asyncio.Event()  # set when the audio cannot be decoded; the connection must end

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._frontend(), name=f"frontend-{self.conexao_id}"),
            asyncio.create_task(self._worker(), name=f"worker-{self.conexao_id}"),
        ]
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"ticker-{self.conexao_id}")

    async def feed(self, data: bytes) -> None:
        """Hand a binary frame to the decoder; raises DecodeError when the stream is undecodable."""
        if self.error is not None:
            raise self.error
        try:
            await self._decoder.write(data, self._deps.clock.now())
        except DecodeError as exc:
            self._fail(exc)
            raise

    async def finish(self) -> None:
        """End of input: process everything already received, wait for the LLM, store every row."""
        self._finishing = True
        try:
            await self._decoder.finish()
        except DecodeError as exc:
            self._fail(exc)
            await self._decoder.aclose()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            if self._llm_task is not None:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(self._llm_task), self._deps.llm_grace_s)
            if self._ticker is not None:
                self._ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._ticker
            await self._end_conversation()  # hanging up ends the conversation
            await self._decoder.aclose()

    def _fail(self, exc: DecodeError) -> None:
        if self.error is None:
            self.error = exc
            log.warning("decode error on %s: %s", self.conexao_id, exc.message)
        self.failed.set()

    def client_gone(self) -> None:
        """The client disconnected: keep processing what arrived, but send nothing more."""
        self.connected = False

    async def aclose(self) -> None:
        """Stop at once (server shutdown deadline passed); what is in flight is abandoned."""
        self._drop_early()
        for task in [*self._tasks, self._ticker, self._llm_task]:
            if task is not None:
                task.cancel()
        await self._decoder.aclose()

    # -- stages ----------------------------------------------------------------------------------

    async def _frontend(self) -> None:
        try:
            async for chunk in self._decoder.chunks():
                samples = chunk.samples
                self.audio_s += samples.size / 16_000
                pcm = np.concatenate([self._carry, samples]) if self._carry.size else samples
                usable = pcm.size - pcm.size % FRAME_SAMPLES
                self._carry = pcm[usable:]
                if not usable:
                    continue
                whole = pcm[:usable]
                voiced = [
                    self._detector.is_voiced(whole[offset : offset + FRAME_SAMPLES])
                    for offset in range(0, usable, FRAME_SAMPLES)
                ]
                heard = await self._pause_verdicts(whole, voiced)
                for segment in self._segmenter.push_many(whole, voiced, chunk.received_at, heard):
                    self._last_voice_end = segment.last_received_at
                    await self._segments.put(
                        _ClosedSegment(segment, self._deps.clock.now(), self._claim_early(segment))
                    )
                self._maybe_start_early(samples.size * 1000 / SAMPLE_RATE)
        except DecodeError as exc:
            self._fail(exc)
        finally:
            last = self._segmenter.flush()
            if last is not None:
                await self._segments.put(_ClosedSegment(last, self._deps.clock.now(), self._claim_early(last)))
            self._drop_early()
            await self._segments.put(None)

    async def _pause_verdicts(self, pcm: np.ndarray, voiced: list[bool]) -> list[bool] | None:
        """Hands this piece to the speech stream (every piece, in order: its state is the room's) and,
        when one of its frames could end a pause (`Segmenter.needs_heard`), waits for the model's
        verdicts on them. A failing model leaves the pauses to the VAD alone for this connection."""
        feed = self._stream_feed
        if feed is None:
            return None
        needed = self._segmenter.needs_heard(voiced)
        try:
            first = feed.push(pcm, now=needed)
            if not needed:
                return None
            await feed.settle()
            return feed.heard(first, len(voiced))
        except Exception:
            self._stream_failed()
            return None

    def _stream_failed(self) -> None:
        """The speech stream failed (its verdicts from here on would be out of step): the VAD alone
        judges this connection's pauses from now on, and the speech gate runs on each segment."""
        if self._stream_feed is not None:
            log.exception("pause gate failed on %s; the VAD alone judges its pauses from now on", self.conexao_id)
            self._stream_feed = None

    # -- early start: hearing a segment during the hang-over ---------------------------------------

    def _maybe_start_early(self, piece_ms: float) -> None:
        """The VAD waits for `hang_over_ms` of silence before it closes a segment, but the audio the
        segment will hold is known after `early_ms`: when a local worker is free, start hearing it,
        at the moment `early_timing` sets (late enough in the pause that it ends about when the
        segment closes; `piece_ms` is how much audio the next piece will add). If speech comes back
        first, the early work is dropped and the longer segment is heard when it closes; the rows
        and the transcripts are the same either way."""
        ready = self._deps.early_start
        if ready is None:
            return
        segmenter = self._segmenter
        offer = segmenter.take_early()
        paused = segmenter.trailing_silence_ms >= segmenter.early_offer_ms
        if self._early is not None and (offer is not None or not paused):
            self._drop_early()  # speech came back: the segment will be longer than the one being heard
        if offer is not None:
            self._offer = offer
        elif not paused:
            self._offer = None  # speech came back, or the segment closed
        if self._early is not None:
            self._maybe_start_voice(self._early, segmenter.trailing_silence_ms, piece_ms)
        # An offer stays good while the pause lasts: it is tried again with each piece, so it starts
        # when the timing says (EarlyStartTiming), or when a worker comes free later in the hang-over.
        if self._offer is None or self._early is not None:
            return
        timing = self._deps.early_timing
        if timing is not None and not timing.due(segmenter.trailing_silence_ms, piece_ms):
            return
        if not ready():
            return
        offer, self._offer = self._offer, None
        voice_go = asyncio.Event() if self._speakers is not None and self._deps.voice_timing is not None else None
        task = asyncio.create_task(self._hear(offer.pcm, offer.first_sample, voice_go), name=f"early-{self.conexao_id}")
        self._early = _Early((offer.start_s, offer.end_s), task, voice_go)
        self.early_started += 1
        if timing is not None:
            task.add_done_callback(partial(self._timed, timing, self._deps.clock.now()))
        self._maybe_start_voice(self._early, segmenter.trailing_silence_ms, piece_ms)

    def _maybe_start_voice(self, early: _Early, silence_ms: float, piece_ms: float) -> None:
        """Let an early hearing work out the speaker's voice once `voice_timing` says it is due: the
        voice takes a fraction of a transcription, so it can wait until the pause has all but closed
        the segment, and the voices of the hearings that speech breaks before then are never computed
        (at 150 ms of silence a third to half of the hearings are thrown away; docs/performance.md)."""
        timing = self._deps.voice_timing
        if early.voice_go is None or early.voice_go.is_set() or timing is None:
            return
        if timing.due(silence_ms, piece_ms):
            early.voice_go.set()

    def _timed(self, timing: EarlyStartTiming, started: float, task: asyncio.Task[_Heard]) -> None:
        """An early hearing's time, for when the next one starts: only a finished transcription (a
        hearing dropped, or stopped by the speech gate, says nothing about how long one takes). Timed
        to the transcript, not to the task's end: the voice, started near the close by `voice_timing`,
        may end later, and counting it would move the next start earlier, and the voice's with it."""
        if task.cancelled() or task.exception() is not None:
            return
        heard = task.result()
        if heard.transcript is not None and heard.answered_at is not None:
            timing.observe(heard.answered_at - started)

    def _claim_early(self, segment: SpeechSegment) -> asyncio.Task[_Heard] | None:
        """The early work on exactly this segment's audio, if any; other early work is dropped."""
        self._offer = None
        early = self._early
        if early is not None and early.key == (segment.start_s, segment.end_s):
            self._early = None
            self.early_used += 1
            if early.voice_go is not None:
                early.voice_go.set()  # the segment closed: its voice is wanted now, whatever the timing
            return early.task
        self._drop_early()
        return None

    def _drop_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.task.cancel()  # a decode already running on a worker finishes; its result is ignored

    async def _worker(self) -> None:
        while (item := await self._segments.get()) is not None:
            try:
                await self._cycle(item)
            except Exception:
                log.exception("cycle failed on %s", self.conexao_id)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._deps.tick_s)
            if self._finishing:
                continue
            now = self._deps.clock.now()
            await self._end_conversation_if_silent(now)
            if self._llm_task is None:
                self._fire_from_timer(self._buffer.tick(now))

    # -- one cycle -------------------------------------------------------------------------------

    async def _cycle(self, item: _ClosedSegment) -> None:
        clock, segment = self._deps.clock, item.segment
        interaction = Interaction(
            balcao_id=self.balcao_id,
            conexao_id=self.conexao_id,
            segmento_inicio=round(segment.start_s, 3),
            segmento_fim=round(segment.end_s, 3),
            ts_audio_received=segment.first_received_at,
            ts_segment_closed=item.closed_at,
        )
        self._interaction_uuids.add(interaction.uuid)
        # Heard early (ts_trans_req then precedes ts_segment_closed), or now.
        heard = await item.heard if item.heard is not None else await self._hear(segment.pcm, segment.first_sample)
        interaction.ts_trans_req = heard.requested_at
        interaction.ts_trans_resp = heard.answered_at
        if heard.gate is not None:
            # A noise burst the VAD let through: no transcription, no speaker embedding; still a row.
            interaction.record_transcript(heard.gate)
            await self._store_without_text(interaction)
            return
        if heard.transcript is not None:
            interaction.record_transcript(heard.transcript)
        else:
            interaction.record_stt_failure(heard.stt_error or "no transcript")
        interaction.speaker = await self._identify(heard.voice) if heard.voice is not None else None
        speaker_label = _role_label(interaction.speaker.top_role) if interaction.speaker is not None else None
        text = (interaction.transcricao or "").strip()
        if not text:
            await self._store_without_text(interaction)
            return
        conversation, started = await self._conversation_at(segment.first_received_at)
        interaction.conversa_id = conversation.id
        if self.want_transcripts:
            event = TranscriptEvent(
                interaction.uuid, text, segment.speech_start_s, segment.speech_end_s, speaker_label, interaction.speaker
            )
            if await self._emit(event):
                interaction.ts_trans_sent = clock.now()
        await self._ask_playbook(interaction, conversation, text, speaker_label)
        ticked = conversation.checklist.hear(text, speaker_label)
        conversation.heard(segment.last_received_at)
        if self._deps.checklist:
            interaction.checklist = conversation.checklist.snapshot()
            if started or ticked:
                await self._emit(self._checklist_event(conversation, interaction.uuid))
        before = self._buffer.pending_text
        decision = self._buffer.offer(
            text, clock.now(), speaker_label, started_at=segment.first_received_at, ended_at=segment.last_received_at
        )
        interaction.buffer_acao = _describe(decision)
        if decision.action is BufferAction.DISCARD:
            interaction.transcricao_completa = f"{before} {text}".strip()
            await self._store(interaction)
        elif decision.fires and self._deps.recommender is not None and self._llm_task is None:
            self._start_llm(interaction)
        else:
            if decision.fires and self._deps.recommender is None:
                # No LLM configured: the trigger resets the buffer; the row says the LLM was not called.
                self._buffer.take(clock.now())
                interaction.transcricao_completa = before + (" " if before else "") + text
            else:
                if decision.fires:
                    interaction.buffer_acao += ";ia_ocupada"
                interaction.transcricao_completa = self._buffer.pending_text
            await self._store(interaction)

    async def _store_without_text(self, interaction: Interaction) -> None:
        if self._conversation is not None:
            interaction.conversa_id = self._conversation.id
            interaction.checklist = self._checklist_snapshot(self._conversation)
        await self._store(interaction)

    async def _hear(self, pcm: np.ndarray, first_sample: int, voice_go: asyncio.Event | None = None) -> _Heard:
        """The speech gate, then the transcription beside the speaker's voice (once `voice_go` is set,
        when given): everything the models say about this audio. Failures are recorded in what comes
        back, never raised."""
        clock = self._deps.clock
        heard = _Heard(requested_at=clock.now())
        silent = await self._gate_says_silent(pcm, first_sample)
        if silent is not None:
            heard.gate, heard.answered_at = silent, clock.now()
            return heard
        # With AUDIO_CLEANER=on the segment is cleaned before both models hear it; with "speaker" the
        # speaker identification cleans its own copy, beside the transcription (docs/audio-frontend.md).
        audio = await self._clean(pcm)
        listening: asyncio.Task[Voice | None] | None = None
        if self._speakers is not None:
            listening = asyncio.create_task(self._listen(audio, voice_go))
        try:
            await self._transcribe(audio, heard)
            heard.answered_at = clock.now()
            heard.voice = await listening if listening is not None else None
        finally:
            if listening is not None and not listening.done():
                listening.cancel()  # this hearing was dropped (speech came back, or shutdown)
        return heard

    async def _gate_says_silent(self, pcm: np.ndarray, first_sample: int) -> Transcript | None:
        """None when the segment may hold speech; else what a provider that heard nothing would say
        (stt_provider = the gate, stt_status "vazia"). The gate reads its model's verdicts on the
        segment from the pause gate's stream when that runs (the same model, which has heard the
        room), else runs the model on the segment alone. A failing gate lets the segment through."""
        gate = self._deps.speech_gate
        if gate is None:
            return None
        started = self._deps.clock.now()
        try:
            probabilities = await self._streamed_probabilities(first_sample, first_sample + pcm.size)
            if probabilities is None:
                probabilities = await gate.speech_probabilities(pcm)
        except Exception:
            log.exception("speech gate %s failed on %s; transcribing the segment anyway", gate.name, self.conexao_id)
            return None
        if self._deps.speech_gate_policy.passes(probabilities, gate.frame_ms):
            return None
        latency_ms = round((self._deps.clock.now() - started) * 1000, 1)
        return Transcript("", provider=gate.name, latency_ms=latency_ms)

    async def _streamed_probabilities(self, first_sample: int, end_sample: int) -> np.ndarray | None:
        feed = self._stream_feed
        if feed is None:
            return None
        try:
            return await feed.probabilities(first_sample, end_sample)
        except Exception:
            self._stream_failed()
            return None

    async def _clean(self, pcm: np.ndarray) -> np.ndarray:
        if self._deps.cleaner is None:
            return pcm
        # Only the speech the VAD hands on is cleaned (docs/audio-frontend.md has the numbers);
        # spectral gating costs tens of ms per segment, so it runs off the event loop.
        try:
            return await asyncio.to_thread(self._deps.cleaner.clean, pcm)
        except Exception:
            log.exception("audio cleaner failed on %s; using the raw segment", self.conexao_id)
            return pcm

    async def _listen(self, pcm: np.ndarray, go: asyncio.Event | None = None) -> Voice | None:
        assert self._speakers is not None
        if go is not None:
            await go.wait()  # cancelled here when the hearing is dropped: nothing was computed
        clock, timing = self._deps.clock, self._deps.voice_timing
        started = clock.now()
        try:
            voice = await self._speakers.listen(pcm)
        except Exception:
            log.exception("speaker identification failed on %s", self.conexao_id)
            return None
        if timing is not None and voice is not None:
            timing.observe(clock.now() - started)  # the speaker thread's queue included: what it takes now
        return voice

    async def _identify(self, voice: Voice) -> SpeakerMatch | None:
        assert self._speakers is not None
        try:
            return await self._speakers.identify(voice, self.balcao_id)
        except Exception:
            log.exception("speaker identification failed on %s", self.conexao_id)
            return None

    async def _transcribe(self, pcm: np.ndarray, heard: _Heard) -> None:
        """Fills the transcript, or the failure: a cycle whose transcription failed is still stored
        (empty transcript, stt_status "erro") and the connection stays open."""
        transcriber = self._deps.transcriber
        try:
            heard.transcript = await transcriber.transcribe(pcm, self._deps.language)
        except TranscriptionError as exc:
            log.warning("transcription failed on %s: %s", self.conexao_id, exc)
            heard.stt_error = str(exc)
        except Exception as exc:
            log.exception("transcriber %s crashed on %s", transcriber.name, self.conexao_id)
            heard.stt_error = f"{transcriber.name}: {type(exc).__name__}: {exc}"

    # -- the LLM ---------------------------------------------------------------------------------

    def _fire_from_timer(self, decision: BufferDecision) -> None:
        if not decision.fires:
            return
        if self._deps.recommender is None:
            self._buffer.take(self._deps.clock.now())
            return
        interaction = Interaction(balcao_id=self.balcao_id, conexao_id=self.conexao_id)
        self._interaction_uuids.add(interaction.uuid)
        interaction.buffer_acao = _describe(decision)
        if self._conversation is not None:
            interaction.conversa_id = self._conversation.id
            interaction.checklist = self._checklist_snapshot(self._conversation)
        self._start_llm(interaction)

    def _start_llm(self, interaction: Interaction) -> None:
        now = self._deps.clock.now()
        # The reply is filtered against the conversation the question came from, even if it has ended since.
        conversation = self._conversation or Conversation.start(now)
        lines = self._buffer.take(now)
        request = RecommendationRequest(
            balcao_id=self.balcao_id,
            lines=tuple(lines),
            history=tuple(self._history[-HISTORY_LINES:]),
            already_suggested=tuple(conversation.shown),
            at=now,
        )
        interaction.transcricao_completa = request.context
        self._history.extend(lines)
        self._llm_task = asyncio.create_task(
            self._call_llm(interaction, request, conversation), name=f"llm-{self.conexao_id}"
        )

    async def _call_llm(
        self, interaction: Interaction, request: RecommendationRequest, conversation: Conversation
    ) -> None:
        recommender, clock = self._deps.recommender, self._deps.clock
        assert recommender is not None
        requested_at = clock.now()
        try:
            result = await recommender.recommend(request)
        except Exception as exc:  # a recommender must not take the session down
            log.exception("recommender %s crashed on %s", recommender.name, self.conexao_id)
            result = RecommendationResult(
                IaStatus.ERROR, provider=recommender.name, error=f"{type(exc).__name__}: {exc}"
            )
        interaction.record_ai(result, requested_at, clock.now())
        # The row keeps everything the LLM said; the card leaves out what this conversation already saw.
        fresh = conversation.admit(interaction.suggestions)
        if fresh and await self._emit(RecommendationEvent(interaction.uuid, fresh, "llm")):
            interaction.ts_rec_sent = clock.now()
        await self._store(interaction)
        self._llm_task = None
        if not self._finishing:
            # Text that arrived while the call was in flight goes out now if a rule says so.
            self._fire_from_timer(self._buffer.tick(clock.now()))

    # -- the playbook, conversations and their checklist -------------------------------------------

    async def _ask_playbook(
        self, interaction: Interaction, conversation: Conversation, text: str, speaker: str | None
    ) -> None:
        instant, now = self._deps.instant, self._deps.clock.now()
        if instant is None:
            return
        request = RecommendationRequest(
            balcao_id=self.balcao_id,
            lines=(BufferLine(text, now, speaker),),
            already_suggested=tuple(conversation.shown),
            at=now,
        )
        try:
            result = await instant.recommend(request)
        except Exception:  # a broken rule must not cost the cycle its transcript or its LLM call
            log.exception("recommender %s crashed on %s", instant.name, self.conexao_id)
            return
        fresh = conversation.admit(result.suggestions)
        if not fresh:
            return
        interaction.playbook_suggestions = fresh
        if await self._emit(RecommendationEvent(interaction.uuid, fresh, "playbook")):
            interaction.ts_playbook_sent = self._deps.clock.now()

    async def _conversation_at(self, speech_start: float) -> tuple[Conversation, bool]:
        """The conversation speech starting at `speech_start` belongs to, and whether it starts with it."""
        current = self._conversation
        if current is not None and current.is_over(speech_start, self._deps.conversation_end_silence_s):
            await self._end_conversation()
            current = None
        if current is not None:
            return current, False
        self._conversation = Conversation.start(speech_start, self._deps.checklist)
        return self._conversation, True

    async def _end_conversation_if_silent(self, now: float) -> None:
        current = self._conversation
        if current is None:
            return
        # A segment the VAD closed but the worker has not reached yet is speech too.
        heard_until = max(current.last_speech_end, self._last_voice_end or current.last_speech_end)
        if now - heard_until > self._deps.conversation_end_silence_s:
            await self._end_conversation()

    async def _end_conversation(self) -> None:
        ended, self._conversation = self._conversation, None
        if ended is None:
            return
        self._history.clear()  # the next customer's LLM context starts empty
        if self._deps.checklist:
            await self._emit(self._checklist_event(ended, None, ended=True))

    def _checklist_snapshot(self, conversation: Conversation) -> dict[str, bool] | None:
        return conversation.checklist.snapshot() if self._deps.checklist else None

    @staticmethod
    def _checklist_event(
        conversation: Conversation, interaction_uuid: str | None, ended: bool = False
    ) -> ChecklistEvent:
        done = conversation.checklist.done
        items = tuple((item, done[item.id]) for item in conversation.checklist.items)
        return ChecklistEvent(conversation.id, items, interaction_uuid, ended)

    # -- feedback ----------------------------------------------------------------------------------

    async def feedback(self, interaction_uuid: str, useful: bool, origin: str | None = None) -> bool:
        """Store the counter's verdict on the cards of one interaction; False when the id is not one of
        this counter's interactions (malformed, unknown, or another balcão's)."""
        repository = self._deps.feedback
        if repository is None:
            raise RuntimeError("no feedback repository configured")
        try:
            canonical = str(uuid.UUID(interaction_uuid))
        except (ValueError, AttributeError, TypeError):
            return False
        if canonical not in self._interaction_uuids:
            # An earlier connection's card (the attendant taps late): the row must be this balcão's.
            row = await self._deps.interactions.get(canonical)
            if row is None or row.balcao_id != self.balcao_id:
                return False
        await repository.add(
            Feedback(
                interacao_uuid=canonical,
                balcao_id=self.balcao_id,
                util=useful,
                origem=origin,
                conexao_id=self.conexao_id,
            )
        )
        return True

    # -- output ----------------------------------------------------------------------------------

    async def _emit(self, event: SessionEvent) -> bool:
        if not self.connected:
            return False
        try:
            await self._emit_to_client(event)
            return True
        except Exception as exc:
            log.info("client %s gone while sending: %s", self.conexao_id, exc)
            self.connected = False
            return False

    async def _store(self, interaction: Interaction) -> None:
        try:
            await self._deps.interactions.add(interaction)
            self.stored += 1
        except Exception:
            log.exception("could not store interaction %s of %s", interaction.uuid, self.conexao_id)


def _describe(decision: BufferDecision) -> str:
    if decision.reason is None:
        return decision.action.value
    return f"{decision.action.value}:{decision.reason.value}"


def _role_label(role: str | None) -> str | None:
    if role is None:
        return None
    return {"atendente": "Atendente", "cliente": "Cliente"}.get(role, role.capitalize())
