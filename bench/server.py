"""Load benchmark: the real server, N counters streaming counter-like audio in real time over /ws.

    .venv/bin/python -m bench.server --counters 1 8 16 24 32 [--seconds 120] [--format webm|pcm]

For each N it starts N WebSocket counters at once against one real server (`python -m balto serve`:
embedded PostgreSQL, the packaged Whisper base int8, the playbook, and a zero-latency loopback LLM so
the LLM's own time is excluded). Each counter streams its own seeded recording (speech turns from
the shared real sentences when present, else the committed fixtures; pauses of 0.5-8 s; cafe noise at
20 dB) as a browser would: WebM/Opus in the counter page's 100 ms timeslices (`--timeslice-ms`; or
raw PCM in 100 ms frames), each piece sent once the audio in it has been "spoken". The counters join
within 2 s of each other and each first sentence starts 1 s in, so the first sentences end together,
as after a restart; `--lead-s S` starts each one after 1 to S s instead. It measures:

- latency from the end of each utterance (known from the generator) to the `transcricao` frame that
  ends it, and to its `recomendar` frame when one comes: p50 / p95 / max; and each utterance's
  latency at the wall-clock second it ended (`transcript_timeline`, for `bench.timeline`);
- the fraction of utterances transcribed at all, and rows whose transcription failed;
- server CPU-seconds per audio-second (the server process and its ffmpeg children; PostgreSQL is
  reported apart), and server RSS (with children) at its peak;
- the largest N whose p95 end-of-speech -> transcript is <= 1.5 s with nothing dropped;
- the live word error rate of each level (every counter's transcripts against its script) beside the
  offline whole-file WER of the same model on the same recordings;
- the memory of each further idle connection (handshake and WebM header sent, ffmpeg child running);
- the server's own stage breakdown from the rows' ts_* stamps (queue, transcription, frames);
- where the time goes: the front-end alone (decode + VAD of one counter's stream, in-process) and the
  transcription alone (that stream's VAD segments through the production WhisperTranscriber, one
  window each), both in CPU-seconds per audio-second.

Writes a JSON report, prints a table and draws a PNG (latency percentiles and CPU against N).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from tests.support.live_server import free_port

from balto.app.container import single_thread_blas
from balto.app.settings import Settings
from balto.evaluation import word_errors
from bench import machine
from bench.audio import RATE, Conversation, build_conversation, real_audio_dir
from bench.frontend import TIMESLICE_S, encode_webm, run_stream, webm_pieces

REPO = Path(__file__).resolve().parents[1]
# A level reads the server's PSS this often (its RSS every second): on the Zen 5 VM of the second
# Zen 5 round, reading it every second took 0.056 cores at 32 counters and slowed the server
# (docs/performance.md). Its memory grows in steps that stay mapped (a batch's buffers); a level
# ends with one more read.
PSS_EVERY_S = 5.0
TARGET_P95_S = 1.5
ADMIN_KEY = "bench-admin"


@dataclass
class Counter:
    index: int
    key: str
    conversation: Conversation
    pieces: list[bytes]
    chunk_s: float
    started_at: float = 0.0  # wall time of audio sample 0
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None


def make_pieces(conversation: Conversation, fmt: str, timeslice_s: float = TIMESLICE_S) -> tuple[list[bytes], float]:
    """The recording as a counter sends it: WebM pieces every `timeslice_s` (MediaRecorder's
    timeslice), or raw PCM frames of 100 ms."""
    if fmt == "pcm":
        step = RATE // 10
        pcm = conversation.pcm
        return [pcm[i : i + step].astype("<i2").tobytes() for i in range(0, pcm.size, step)], 0.1
    return webm_pieces(encode_webm(conversation.pcm), timeslice_s), timeslice_s


async def stream_counter(url: str, counter: Counter, start_delay_s: float) -> None:
    import websockets

    await asyncio.sleep(start_delay_s)
    try:
        async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"api_key": counter.key, "transcricao": True}))
            hello = json.loads(await ws.recv())
            if hello.get("comando") != "conectado":
                counter.error = f"handshake refused: {hello}"
                return

            async def reader() -> None:
                try:
                    async for raw in ws:
                        counter.events.append((time.time(), json.loads(raw)))
                except websockets.ConnectionClosed:
                    pass

            reading = asyncio.create_task(reader())
            counter.started_at = time.time()
            for index, piece in enumerate(counter.pieces):
                # A piece leaves once the audio in it has been spoken, as MediaRecorder does.
                due = counter.started_at + (index + 1) * counter.chunk_s
                await asyncio.sleep(max(0.0, due - time.time()))
                await ws.send(piece)
            await ws.send(json.dumps({"comando": "fim"}))
            await asyncio.wait_for(reading, 300)  # a queue past capacity drains for minutes
    except Exception as exc:  # a benchmark reports failures, it does not stop at the first
        counter.error = f"{type(exc).__name__}: {exc}"


def latency_stats(values: list[float]) -> dict[str, float | None]:
    """p50 / p90 / p95 / max of latencies in seconds, and how many."""
    if not values:
        return {"p50": None, "p90": None, "p95": None, "max": None, "n": 0}
    array = np.array(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p90": round(float(np.percentile(array, 90)), 3),
        "p95": round(float(np.percentile(array, 95)), 3),
        "max": round(float(array.max()), 3),
        "n": len(values),
    }


def analyse(counters: list[Counter]) -> dict[str, Any]:
    transcript_latency: list[float] = []
    by_third: list[list[float]] = [[], [], []]  # the same latencies, by where in the recording the utterance ended
    card_latency: list[float] = []
    utterances = transcribed = 0
    wer_errors = wer_words = 0
    per_counter: list[tuple[int, int]] = []
    missed: list[dict[str, Any]] = []  # sentences no transcript covered: where to look first
    timeline: list[tuple[int, float, float]] = []  # (counter, end of speech on the wall clock, latency)
    for index, counter in enumerate(counters):
        if counter.error:
            continue
        events = [(t, m) for t, m in counter.events if m.get("comando") == "transcricao"]
        heard = " ".join(m["texto"] for _, m in sorted(events, key=lambda e: e[1]["inicio"]))
        e, w = word_errors(counter.conversation.text, heard)
        wer_errors, wer_words = wer_errors + e, wer_words + w
        per_counter.append((e, w))
        by_uuid = {m["interacao_id"]: m for _, m in events}
        end_of_stream = counter.conversation.duration_s
        covered: set[int] = set()
        finals: dict[int, float] = {}  # utterance -> latency of the frame that ends it
        for received, message in events:
            for u, (start, end) in enumerate(counter.conversation.spans):
                if message["inicio"] < end and message["fim"] > start:
                    covered.add(u)
                # The frame whose speech ends where the utterance ends (VAD times are +-1 frame; a
                # segment that runs on into the next utterance ends that one, not this one).
                if abs(message["fim"] - end) <= 0.6:
                    finals[u] = received - (counter.started_at + end)
        for u, (_, end) in enumerate(counter.conversation.spans):
            if end > end_of_stream - 1.0:
                continue  # cut by the end of the recording
            utterances += 1
            transcribed += u in covered
            if u not in covered:
                start = counter.conversation.spans[u][0]
                missed.append(
                    {
                        "counter": index,
                        "start_s": round(start, 2),
                        "end_s": round(end, 2),
                        "text": counter.conversation.transcripts[u],
                    }
                )
            if u in finals:
                transcript_latency.append(finals[u])
                timeline.append((index, round(counter.started_at + end, 2), round(finals[u], 3)))
                by_third[min(2, int(3 * end / end_of_stream))].append(finals[u])
        for received, message in counter.events:
            if message.get("comando") != "recomendar":
                continue
            segment = by_uuid.get(message.get("interacao_id"))
            if segment is None:
                continue  # an LLM call fired by the buffer's timer, not by a segment
            ends = [end for _, end in counter.conversation.spans if abs(segment["fim"] - end) <= 0.6]
            if ends:
                card_latency.append(received - (counter.started_at + ends[-1]))

    return {
        "end_of_speech_to_transcript_s": latency_stats(transcript_latency),
        # A queue that keeps up has the same latency in each third; one past capacity, rising thirds.
        "transcript_s_by_third": [latency_stats(third) for third in by_third],
        # Each sentence's latency at the moment its speech ended (Unix seconds), in that order: what
        # `bench.timeline` lines up with a `bench.threadcpu --trace` of the same run.
        "transcript_timeline": [list(entry) for entry in sorted(timeline, key=lambda entry: entry[1])],
        "drain_s": drain_s(counters),
        "end_of_speech_to_recomendar_s": latency_stats(card_latency),
        "utterances": utterances,
        "transcribed_fraction": round(transcribed / utterances, 4) if utterances else None,
        "live_wer": round(wer_errors / wer_words, 4) if wer_words else None,
        "live_errors_words_per_counter": per_counter,
        "missed_utterances": missed[:20],
        "failed_counters": sum(1 for c in counters if c.error),
        "errors": sorted({c.error for c in counters if c.error})[:5],
    }


def drain_s(counters: list[Counter]) -> float | None:
    """How long the server took to catch up once the load stopped: from the end of the last speech
    any counter sent to the last transcript frame of any counter. With no backlog, that is one
    segment's hang-over and decode; past capacity, the queue left over, so it compares throughput
    under a backlog (batches or lone decodes) where a p95 alone cannot tell a slower queue from a
    longer one."""
    done = [c for c in counters if not c.error]  # a counter without an error streamed its recording
    last_frames = [t for c in done for t, m in c.events if m.get("comando") == "transcricao"]
    if not done or not last_frames:
        return None
    last_speech = max(c.started_at + min(c.conversation.spans[-1][1], c.conversation.duration_s) for c in done)
    return round(max(last_frames) - last_speech, 3)


class Server:
    def __init__(self, data_dir: Path, env_extra: dict[str, str]) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "DATABASE_URL"))},
            "BALTO_DATA_DIR": str(data_dir),
            "PORT": str(self.port),
            "LOG_LEVEL": "WARNING",
            **env_extra,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def run_cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "balto", *args], env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "balto", "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.3)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()[-3000:]}")

    def usage(self) -> tuple[float, int]:
        """(CPU seconds of the server and of its children, live and reaped; RSS of all of them)."""
        assert self.process is not None
        proc = psutil.Process(self.process.pid)
        times = proc.cpu_times()
        cpu = times.user + times.system + times.children_user + times.children_system
        rss = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                t = child.cpu_times()
                cpu += t.user + t.system
                rss += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return cpu, rss

    def pss(self) -> int:
        """Proportional set size of the server and its children: shared pages (ffmpeg's libraries,
        the model files) split between the processes that map them instead of counted in each."""
        assert self.process is not None
        proc = psutil.Process(self.process.pid)
        total = 0
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_full_info().pss
        return total

    def postgres_cpu(self) -> float:
        total = 0.0
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                if proc.info["name"] == "postgres" and str(self.data_dir) in " ".join(proc.info["cmdline"] or []):
                    for p in [proc, *proc.children()]:
                        t = p.cpu_times()
                        total += t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def loopback_llm() -> Any:
    """The zero-latency LLM's stub (OpenAI-compatible, served on 127.0.0.1): it answers at once, with
    a new suggestion each time (the server never shows a suggestion twice in a conversation, so a
    constant reply would be filtered out after the first card)."""
    from tests.support.openai_server import OpenAIStub, Reply

    class Loopback(OpenAIStub):
        def next_reply(self) -> Reply:
            with self._lock:
                self.requests.clear()  # the stub keeps requests for tests; a long run must not grow
                self.headers.clear()
                self.served = getattr(self, "served", 0) + 1
                return Reply.suggestions(f"Sugestão número {self.served}")

    return Loopback()


@contextlib.contextmanager
def serving(
    extra: dict[str, str], keys: int, keep: Path | None = None
) -> Iterator[tuple[Server, list[str], dict[str, str]]]:
    """The real server on a fresh data dir (`keep` to keep it), with the zero-latency LLM and `keys`
    API keys (balcões bench-000, bench-001, ...): yields it, the keys, and the settings it was given
    beyond the environment. Stopped on the way out."""
    from tests.support.openai_server import OpenAIServer

    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    data_dir = contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory(prefix="balto-bench-")
    with data_dir as tmp, OpenAIServer(loopback_llm()) as llm:
        env = {
            "LLM_PROVIDER": "openai_compatible",
            "LLM_BASE_URL": llm.base_url,
            "LLM_API_KEY": "bench",
            "BALTO_ADMIN_KEY": ADMIN_KEY,
            **extra,
        }
        server = Server(Path(tmp), env)
        server.run_cli("migrate")
        created = [server.run_cli("keys", "create", "--balcao", f"bench-{i:03d}") for i in range(keys)]
        server.start()
        try:
            time.sleep(2.0)
            yield server, created, env
        finally:
            server.stop()


async def idle_connection_memory(
    server: Server, keys: list[str], header: bytes, connections: int = 20
) -> dict[str, Any]:
    """Server memory (ffmpeg children included) grown by `connections` idle counters: each has shaken
    hands and sent its first WebM piece (so its ffmpeg child runs) and then says nothing. PSS is the
    figure to read: plain RSS counts each child's shared libraries once per child."""
    import websockets

    await asyncio.sleep(1.0)
    before, before_rss = server.pss(), server.usage()[1]
    sockets = []
    try:
        for i in range(connections):  # a key each: the server limits connections per key
            ws = await websockets.connect(server.url, max_size=None, ping_interval=None)
            await ws.send(json.dumps({"api_key": keys[i % len(keys)]}))
            await ws.recv()
            await ws.send(header)
            sockets.append(ws)
        await asyncio.sleep(3.0)
        after, after_rss = server.pss(), server.usage()[1]
        assert server.process is not None
        children = [p for p in psutil.Process(server.process.pid).children() if "ffmpeg" in p.name()]
        child_uss = [p.memory_full_info().uss for p in children]
    finally:
        for ws in sockets:
            await ws.close()
    return {
        "connections": connections,
        "pss_mb_per_idle_connection": round((after - before) / connections / 1e6, 2),
        "rss_mb_per_idle_connection": round((after_rss - before_rss) / connections / 1e6, 2),
        "ffmpeg_children": len(children),
        "ffmpeg_uss_mb_per_child": round(float(np.mean(child_uss)) / 1e6, 2) if child_uss else None,
    }


def process_cpu_s() -> float:
    """CPU seconds of this process (all threads) and of its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def frontend_alone(pieces: list[bytes], audio_s: float) -> dict[str, Any]:
    """Decode + VAD of one counter's stream in this process, as fast as it goes (no Whisper)."""
    before = process_cpu_s()
    segments = asyncio.run(run_stream(pieces, "auto", 0.0, None))
    return {"cpu_s_per_audio_s": round((process_cpu_s() - before) / audio_s, 5), "segments": segments}


def transcription_breakdown(conversations: list[Conversation], settings: Settings) -> dict[str, Any]:
    """The transcription alone, and the offline floor and accuracy baseline.

    - per segment: the first conversation's VAD segments through the production WhisperTranscriber
      with the server's own settings (threads per decode, encoder window, beam, vocabulary), one at a time, as
      one counter alone gets them;
    - whole file: each conversation transcribed offline as one file with faster-whisper's defaults
      (language pt) on every core: its CPU cost is the floor the live server approaches, and its WER
      (kept per recording, so each level compares with the same recordings) the accuracy the live
      transcripts must not fall below.
    """
    from concurrent.futures import ThreadPoolExecutor

    from balto.adapters.faster_whisper import WhisperTranscriber, load_whisper_model, resolve_model_path
    from balto.adapters.whisper_vocabulary import load_restricted_whisper
    from bench.cleaner import segment

    cache = Path.home() / ".cache" / "balto" / "models"
    model = load_whisper_model("base", cache, settings.stt_compute_type, settings.stt_cpu_threads)
    restricted = (
        load_restricted_whisper(
            Path(resolve_model_path("base", cache)), cache, "pt", settings.stt_compute_type, settings.stt_cpu_threads
        )
        if settings.stt_vocabulary == "auto"
        else None
    )
    first = conversations[0]
    segments = segment(first.pcm)
    executor = ThreadPoolExecutor(1)
    transcriber = WhisperTranscriber(
        model,
        executor,
        language="pt",
        beam_size=settings.stt_beam_size,
        window_s=settings.stt_window_s,
        restricted=restricted,
    )

    async def each() -> None:
        for seg in segments:
            await transcriber.transcribe(seg.pcm, "pt")

    before = process_cpu_s()
    asyncio.run(each())
    per_segment = process_cpu_s() - before
    executor.shutdown()

    offline_model = load_whisper_model("base", cache, settings.stt_compute_type, os.cpu_count() or 1)
    per_recording = []
    audio_s = 0.0
    before = process_cpu_s()
    for conversation in conversations:
        decoded, _ = offline_model.transcribe(conversation.pcm.astype(np.float32) / 32768.0, language="pt")
        text = " ".join(s.text for s in decoded)
        per_recording.append(word_errors(conversation.text, text))
        audio_s += conversation.duration_s
    whole = process_cpu_s() - before
    errors, words = (sum(column) for column in zip(*per_recording, strict=True))
    return {
        "per_segment": {
            "segments": len(segments),
            "cpu_s_per_audio_s": round(per_segment / first.duration_s, 4),
            "cpu_s_per_segment": round(per_segment / max(1, len(segments)), 3),
        },
        "offline_whole_file": {
            "recordings": len(conversations),
            "cpu_s_per_audio_s": round(whole / audio_s, 4),
            "wer": round(errors / words, 4) if words else None,
            "errors_words_per_recording": per_recording,
        },
    }


def offline_wer_of_first(breakdown: dict[str, Any] | None, n: int) -> float | None:
    """The offline whole-file WER of the recordings the first `n` counters streamed (None if not all
    of them were transcribed offline)."""
    if breakdown is None:
        return None
    rows = breakdown["offline_whole_file"]["errors_words_per_recording"]
    if n > len(rows):
        return None
    errors, words = (sum(column) for column in zip(*rows[:n], strict=True))
    return round(errors / words, 4) if words else None


def server_stages(server: Server, rows: int) -> dict[str, Any]:
    """The server's own view of the newest `rows` cycles, from their ts_* stamps (the console's
    /console/api/latencias): p50/p90 of each stage, in ms."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/console/api/latencias?limite={max(1, min(rows, 500))}",
        headers={"X-Admin-Key": ADMIN_KEY},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            report = json.load(response)
    except OSError as exc:
        return {"error": str(exc)}
    return {
        s["etapa"]: {"p50_ms": s["p50_ms"], "p90_ms": s["p90_ms"], "n": s["n"]}
        for s in [*report["etapas"], *report["ponta_a_ponta"], report["fala"]]
    }


SLOW_CALLBACK = re.compile(r"Executing (.+?) took (\d+\.\d+) seconds")


BLOCKED = re.compile(r"event loop blocked (\d+) ms so far; the loop thread is at:\n((?:  .*\n)+)")
WOKEN_LATE = re.compile(r"event loop woken (\d+) ms late")
SLOW_GC = re.compile(r"garbage collection of generation (\d) took (\d+) ms")


def slow_callbacks(log_text: str) -> dict[str, Any]:
    """asyncio debug mode's reports of callbacks that held the event loop too long, and the server's
    loop watchdog (balto.app.loopwatch): where the loop thread was while blocked, how often it was
    woken late from an idle select(), and the garbage collections that took longer than the threshold."""
    found = [(float(m.group(2)), m.group(1)[:160]) for m in SLOW_CALLBACK.finditer(log_text)]
    found.sort(reverse=True)
    blocked = []
    for m in BLOCKED.finditer(log_text):
        frames = [line.strip() for line in m.group(2).splitlines() if line.startswith("  File")]
        blocked.append(f"{m.group(1)} ms at {frames[-1] if frames else '?'}")
    late = [int(m.group(1)) for m in WOKEN_LATE.finditer(log_text)]
    return {
        "count": len(found),
        "max_ms": round(found[0][0] * 1000, 1) if found else 0.0,
        "worst": [f"{s * 1000:.0f} ms: {what}" for s, what in found[:5]],
        "watchdog_blocked_count": len(blocked),
        "watchdog_blocked": blocked[:10],  # the first ten
        "woken_late": {"count": len(late), "max_ms": max(late, default=0)},
        "slow_gc_ms": [int(m.group(2)) for m in SLOW_GC.finditer(log_text)],
    }


def scrape(server: Server) -> dict[str, float]:
    """The server's /metrics samples (empty if it does not answer)."""
    from balto.app.metrics import parse

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            return parse(response.read().decode())
    except OSError:
        return {}


def early_starts(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Segments heard during the hang-over in this level: kept (the segment closed as heard) or not,
    and the Whisper decodes that stopped before the decoder because their caller gave up (dropped
    early starts whose encoder was still running)."""
    return _deltas(
        before,
        after,
        used='balto_early_starts_total{resultado="usado"}',
        dropped='balto_early_starts_total{resultado="descartado"}',
        stopped_before_decoder="balto_stt_decodes_stopped_total",
    )


def segments_heard(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Segments the server finished in this level, and those its speech gate judged noise, so that
    Whisper never heard them (their rows name the gate as the STT provider): what the gate saves
    Whisper, counted rather than inferred."""
    from balto.adapters.silero_gate import NAME

    counts = _deltas(before, after, processed="balto_segments_total")
    gate = f'provider="{NAME}"'
    counts["dropped_by_speech_gate"] = sum(
        int(value - before.get(name, 0.0))
        for name, value in after.items()
        if name.startswith("balto_stt_latency_seconds_count{") and gate in name
    )
    return counts


def whisper_batches(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Whisper calls in this level that decoded segments of several counters together (STT_BATCH)."""
    return _deltas(before, after, calls="balto_stt_batches_total", segments="balto_stt_batched_segments_total")


def _deltas(before: dict[str, float], after: dict[str, float], **names: str) -> dict[str, int]:
    return {key: int(after.get(name, 0.0) - before.get(name, 0.0)) for key, name in names.items()}


def counter_conversation(i: int, seconds: float, source: str = "auto", lead_s: float = 1.0) -> Conversation:
    """Counter i's recording. Each counter has its own order: they do not all say the same
    sentence at the same time. With `lead_s` above 1 s its first sentence starts after 1 to `lead_s`
    seconds of the room (its own draw; the order and the pauses stay those of the default)."""
    lead = 1.0 if lead_s <= 1.0 else float(np.random.default_rng(5000 + i).uniform(1.0, lead_s))
    return build_conversation(
        seed=1000 + i, duration_s=seconds, source=source, pauses=(0.5, 8.0), shuffle=True, lead_s=lead
    )


async def run_level(server: Server, counters: list[Counter], sample_pss: bool = True) -> dict[str, Any]:
    log_offset = server.log.stat().st_size
    metrics_before = scrape(server)
    cpu_before, _ = server.usage()
    pg_before = server.postgres_cpu()
    peak_rss = peak_pss = 0
    sampling_s = 0.0
    stop = asyncio.Event()

    def sample_once(with_pss: bool) -> None:
        nonlocal peak_rss, peak_pss, sampling_s
        began = time.perf_counter()
        peak_rss = max(peak_rss, server.usage()[1])
        if with_pss:
            peak_pss = max(peak_pss, server.pss())
        sampling_s += time.perf_counter() - began

    async def sample() -> None:
        # Reading the server's and its children's memory maps takes tens of ms: off this loop, which
        # times the counters' pieces and stamps the frames that come back. RSS every second, PSS
        # every PSS_EVERY_S: each PSS read walks every mapping and holds the server's mmap lock.
        last_pss = -math.inf
        while not stop.is_set():
            now = time.monotonic()
            with_pss = sample_pss and now - last_pss >= PSS_EVERY_S
            if with_pss:
                last_pss = now
            await asyncio.to_thread(sample_once, with_pss)
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    rng = np.random.default_rng(len(counters))
    generator_before = process_cpu_s()
    started = time.monotonic()
    await asyncio.gather(*(stream_counter(server.url, c, float(rng.uniform(0, 2.0))) for c in counters))
    wall = time.monotonic() - started
    generator_cpu = process_cpu_s() - generator_before
    stop.set()
    await sampler
    cpu_after, _ = server.usage()
    if sample_pss:  # the level's last state too: what a batch's buffers added stays mapped
        await asyncio.to_thread(sample_once, True)
    audio_s = sum(c.conversation.duration_s for c in counters if not c.error)
    result = analyse(counters)
    result["server_stages_ms"] = server_stages(server, sum(len(c.conversation.spans) for c in counters) * 2)
    metrics_after = scrape(server)
    result["early_starts"] = early_starts(metrics_before, metrics_after)
    result["whisper_batches"] = whisper_batches(metrics_before, metrics_after)
    result["segments"] = segments_heard(metrics_before, metrics_after)
    first = counters[0]
    result["first_counter"] = {  # what one counter heard, for auditing the figures by hand
        "script": [
            [round(a, 2), round(b, 2), text]
            for (a, b), text in zip(first.conversation.spans, first.conversation.transcripts, strict=True)
        ],
        "frames": [[round(t - first.started_at, 3), m] for t, m in first.events],
    }
    result.update(
        {
            "counters": len(counters),
            "audio_s": round(audio_s, 1),
            "wall_s": round(wall, 1),
            "server_cpu_s_per_audio_s": round((cpu_after - cpu_before) / audio_s, 4) if audio_s else None,
            "postgres_cpu_s_per_audio_s": round((server.postgres_cpu() - pg_before) / audio_s, 4) if audio_s else None,
            # The machine's cores the benchmark itself took from the server meanwhile: the counters'
            # WebSocket clients, the loopback LLM, and the memory sampling (its share of the wall).
            "load_generator_cores": round(generator_cpu / wall, 3) if wall else None,
            "memory_sampling_s_per_s": round(sampling_s / wall, 4) if wall else None,
            # PSS counts the pages the ffmpeg children share (their binary, libraries) once; RSS once
            # per child, which overstates what N counters take.
            "server_peak_pss_mb": round(peak_pss / 1e6, 1) if sample_pss else None,
            "server_peak_rss_mb": round(peak_rss / 1e6, 1),
        }
    )
    if "ASYNCIO_SLOW_CALLBACK_MS" in server.env or "LOOP_WATCHDOG_MS" in server.env:
        with server.log.open() as log:
            log.seek(log_offset)
            result["slow_callbacks"] = slow_callbacks(log.read())
    return result


def plot(levels: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install '.[bench]'): no plot", file=sys.stderr)
        return
    n = [lv["counters"] for lv in levels]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, style in (("p50", "o-"), ("p95", "s-"), ("max", "^--")):
        ax1.plot(n, [lv["end_of_speech_to_transcript_s"][key] for lv in levels], style, label=f"transcript {key}")
    ax1.axhline(TARGET_P95_S, color="red", linestyle=":", label="p95 target 1.5 s")
    ax1.set_xlabel("counters streaming at once")
    ax1.set_ylabel("end of speech -> transcript (s)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(
        n, [lv["server_cpu_s_per_audio_s"] * lv["counters"] for lv in levels], "o-", label="cores needed to keep up"
    )
    ax2.axhline(os.cpu_count() or 1, color="red", linestyle=":", label="cores")
    ax2.set_xlabel("counters streaming at once")
    ax2.set_ylabel("server CPU-s per audio-s x N")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle("Balto Server on " + machine.describe())
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counters", type=int, nargs="+", default=[1, 8, 16, 24, 32])
    parser.add_argument("--seconds", type=float, default=120.0, help="audio per counter")
    parser.add_argument("--format", choices=["webm", "pcm"], default="webm")
    parser.add_argument(
        "--timeslice-ms",
        type=int,
        default=int(TIMESLICE_S * 1000),
        help="WebM: how often a counter hands over a piece (MediaRecorder's timeslice; the page's value by default)",
    )
    parser.add_argument("--source", choices=["auto", "real", "fixtures"], default="auto")
    parser.add_argument(
        "--lead-s",
        type=float,
        default=1.0,
        metavar="S",
        help="each counter's first sentence starts after 1 to S s of the room, drawn per counter (default 1: "
        "every counter's first sentence ends within a few seconds of the others', as after a server restart)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "measurements" / "bench")
    parser.add_argument("--env", action="append", default=[], help="extra server setting, NAME=VALUE")
    parser.add_argument("--stop-when-failing", action="store_true", help="stop the sweep at the first N over target")
    parser.add_argument(
        "--check-loop",
        type=float,
        default=0.0,
        metavar="MS",
        help="run the server in asyncio debug mode and report callbacks holding the loop longer than MS",
    )
    parser.add_argument(
        "--watch-loop",
        type=float,
        default=0.0,
        metavar="MS",
        help="without debug mode: only the server's loop watchdog (LOOP_WATCHDOG_MS), which costs the loop nothing",
    )
    parser.add_argument("--keep", type=Path, help="keep the server's data dir (database, log) here")
    parser.add_argument(
        "--no-breakdown",
        action="store_true",
        help="skip the front-end-alone, transcription-alone and offline whole-file measurements",
    )
    parser.add_argument(
        "--no-pss",
        action="store_true",
        help="no PSS sampling during a level (reading the server's memory maps, tens of ms, holds its mmap lock; "
        f"read every {PSS_EVERY_S:g} s otherwise)",
    )
    parser.add_argument(
        "--wer-recordings", type=int, default=8, help="recordings transcribed offline for the baseline WER"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    single_thread_blas()  # as the server does: the offline baseline pays no spinning BLAS thread either

    source = args.source
    if source == "auto":
        source = "real" if real_audio_dir() else "fixtures"
    most = max(args.counters)
    print(f"generating audio for up to {most} counters ({source}, {args.seconds:.0f} s each)...", flush=True)
    recordings = []
    for i in range(max(args.counters)):
        conversation = counter_conversation(i, args.seconds, source, args.lead_s)
        recordings.append((conversation, *make_pieces(conversation, args.format, args.timeslice_ms / 1000)))
    front_end = None
    if not args.no_breakdown:
        front_end = frontend_alone(recordings[0][1], recordings[0][0].duration_s)
        print(f"front-end alone (decode + VAD, {args.format}): {front_end}", flush=True)

    extra = dict(item.split("=", 1) for item in args.env)
    if args.check_loop:
        extra["ASYNCIO_SLOW_CALLBACK_MS"] = str(args.check_loop)
    if args.watch_loop:
        extra["LOOP_WATCHDOG_MS"] = str(args.watch_loop)
    with serving(extra, max(most, 20), args.keep) as (server, keys, env):
        _, idle_rss = server.usage()
        idle = asyncio.run(idle_connection_memory(server, keys, recordings[0][1][0]))
        print(f"server RSS idle {idle_rss / 1e6:.0f} MB; each further idle connection: {idle}", flush=True)
        levels = []
        for n in args.counters:
            counters = [Counter(i, keys[i], recordings[i][0], recordings[i][1], recordings[i][2]) for i in range(n)]
            level = asyncio.run(run_level(server, counters, sample_pss=not args.no_pss))
            levels.append(level)
            t = level["end_of_speech_to_transcript_s"]
            print(
                f"N={n:>3}  transcript p50 {t['p50']} p95 {t['p95']} max {t['max']}  "
                f"p95 by third {[third['p95'] for third in level['transcript_s_by_third']]}  "
                f"drain {level['drain_s']} s  "
                f"transcribed {level['transcribed_fraction']}  CPU-s/audio-s {level['server_cpu_s_per_audio_s']}  "
                f"PSS {level['server_peak_pss_mb']} MB (RSS {level['server_peak_rss_mb']})  "
                f"live WER {level['live_wer']}  "
                f"failed {level['failed_counters']}  segments {level['segments']}  "
                f"early starts {level['early_starts']}  "
                f"batched {level['whisper_batches']}",
                flush=True,
            )
            ok = t["p95"] is not None and t["p95"] <= TARGET_P95_S and level["transcribed_fraction"] == 1.0
            if args.stop_when_failing and not ok:
                break

    breakdown = None
    if not args.no_breakdown:
        print("transcription alone and the offline whole-file baseline...", flush=True)
        wer_set = [recordings[i][0] for i in range(min(args.wer_recordings, most))]
        breakdown = transcription_breakdown(wer_set, Settings.from_env(env))
        for level in levels:
            level["offline_wer_same_recordings"] = offline_wer_of_first(breakdown, level["counters"])

    passing = [
        lv["counters"]
        for lv in levels
        if lv["end_of_speech_to_transcript_s"]["p95"] is not None
        and lv["end_of_speech_to_transcript_s"]["p95"] <= TARGET_P95_S
        and lv["transcribed_fraction"] == 1.0
        and not lv["failed_counters"]
    ]
    report = {
        "command": "python -m bench.server " + " ".join(sys.argv[1:]),
        "machine": machine.describe(),
        "format": args.format,
        "timeslice_ms": round(recordings[0][2] * 1000),  # PCM goes in 100 ms frames whatever the option
        "source": source,
        "seconds_per_counter": args.seconds,
        "lead_s": args.lead_s,
        "server_idle_rss_mb": round(idle_rss / 1e6, 1),
        "idle_connection": idle,
        "front_end_alone": front_end,
        "transcription_alone": breakdown,
        "levels": levels,
        "largest_n_within_target": max(passing) if passing else None,
    }
    stem = f"server-{args.format}"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(levels, args.out / f"{stem}.png")
    print()
    header = ("N", "p50", "p95", "max", "card p95", "transcribed", "CPU-s/audio-s", "PSS MB", "live WER", "offline")
    print("{:>4} {:>6} {:>6} {:>6} {:>9} {:>12} {:>14} {:>8} {:>9} {:>8}".format(*header))
    for lv in levels:
        t, c = lv["end_of_speech_to_transcript_s"], lv["end_of_speech_to_recomendar_s"]
        print(
            f"{lv['counters']:>4} {t['p50']!s:>6} {t['p95']!s:>6} {t['max']!s:>6} {c['p95']!s:>9} "
            f"{lv['transcribed_fraction']!s:>12} {lv['server_cpu_s_per_audio_s']!s:>14} "
            f"{lv['server_peak_pss_mb']!s:>8} {lv['live_wer']!s:>9} {lv.get('offline_wer_same_recordings')!s:>8}"
        )
    if breakdown:
        offline = breakdown["offline_whole_file"]
        print(
            f"offline whole-file: WER {offline['wer']} over {offline['recordings']} recordings, "
            f"{offline['cpu_s_per_audio_s']} CPU-s/audio-s; per-segment transcription alone: "
            f"{breakdown['per_segment']['cpu_s_per_audio_s']} CPU-s/audio-s; front-end alone: "
            f"{front_end['cpu_s_per_audio_s'] if front_end else None} CPU-s/audio-s"
        )
    print(f"largest N with p95 <= {TARGET_P95_S} s and nothing dropped: {report['largest_n_within_target']}")
    print(f"report: {args.out / (stem + '.json')}  plot: {args.out / (stem + '.png')}")


if __name__ == "__main__":
    main()
