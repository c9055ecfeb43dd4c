"""Decoder on a long-lived ffmpeg child per connection (the static binary imageio-ffmpeg ships).

Client bytes go to ffmpeg's stdin as they arrive; ffmpeg writes s16le 16 kHz mono on stdout, read
by the event loop without blocking; stderr is drained continuously (a full stderr pipe would stall
ffmpeg) and its last lines explain a failure. The child is always killed and reaped in `aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import subprocess
from collections import deque
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path

import numpy as np

from balto.domain.audio import AudioFormat, PcmChunk
from balto.ports.audio import AudioDecoder, DecodeError

log = logging.getLogger(__name__)

READ_BYTES = 3200  # 100 ms of s16le 16 kHz mono per read at most; a read returns what is there
_DEMUXERS = {"webm": "matroska", "ogg": "ogg", "wav": "wav"}
# Lines that mean the input is not (or no longer) the declared stream. ffmpeg resyncs silently past
# garbage inside a WebM or Ogg stream; a WebSocket does not corrupt bytes, so garbage means a broken
# client, which is told so rather than decoded around. "File ended prematurely" is not here: it is
# what a client that hangs up mid-cluster looks like.
_FATAL = re.compile(
    r"Invalid data found|EBML header parsing failed|could not find codec|Unknown input format|"
    r"Error opening input|Failed to find a valid|does not contain any stream|detected only with low score|"
    r"exceeds containing master element|inside parent with finite size|CRC mismatch|Error while decoding|"
    r"Invalid packet|Header missing|Error parsing",
    re.IGNORECASE,
)


@cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def ffmpeg_args(fmt: AudioFormat) -> list[str]:
    demuxer = _DEMUXERS.get(fmt.format)
    args = ["-hide_banner", "-loglevel", "warning", "-nostdin", "-threads", "1"]
    # Low latency: no probing beyond the container header (the codec parameters of WebM and Ogg are
    # in their headers) and every packet flushed. Not `-fflags nobuffer`: it drops the first packets.
    if demuxer is not None:
        args += ["-probesize", "32", "-analyzeduration", "0", "-f", demuxer]
    args += ["-i", "pipe:0", "-vn", "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000"]
    args += ["-flush_packets", "1", "pipe:1"]
    return args


class FfmpegDecoder(AudioDecoder):
    """WebM/Opus, Ogg/Opus, WAV or anything ffmpeg reads, as 16 kHz mono int16.

    The child starts on the first write, so a connection that sends no audio costs no process.
    Output is stamped with the arrival time of the latest input written before it was read: the
    bytes that completed that audio (ffmpeg decodes each packet as soon as it is whole).
    """

    def __init__(self, fmt: AudioFormat, exe: str | None = None, stderr_lines: int = 20) -> None:
        self._fmt = fmt
        self._exe = exe
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: deque[str] = deque(maxlen=stderr_lines)
        self._stderr_task: asyncio.Task[None] | None = None
        self._fatal: str | None = None
        self._last_arrival = 0.0
        self._started = asyncio.Event()
        self._finished = False
        self._closed = False

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def _spawn(self) -> asyncio.subprocess.Process:
        self._proc = await asyncio.create_subprocess_exec(
            self._exe or ffmpeg_exe(),
            *ffmpeg_args(self._fmt),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr(self._proc), name=f"ffmpeg-stderr-{self._proc.pid}")
        self._started.set()
        return self._proc

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            self._stderr.append(text)
            log.debug("ffmpeg[%s]: %s", proc.pid, text)
            if self._fatal is None and _FATAL.search(text):
                self._fatal = text
                # Stop decoding what follows garbage; chunks() then ends with the error.
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

    def _error(self, default: str) -> DecodeError:
        detail = self._fatal or (self._stderr[-1] if self._stderr else default)
        return DecodeError("audio_invalido", f"não foi possível decodificar o áudio ({self._fmt.format}): {detail}")

    async def write(self, data: bytes, received_at: float) -> None:
        if self._closed or self._finished or not data:
            return
        proc = self._proc or await self._spawn()
        if self._fatal is not None:
            raise self._error("erro do decodificador")
        self._last_arrival = received_at
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
            await proc.stdin.drain()  # back-pressure: a slow decoder slows the client's reads
        except (BrokenPipeError, ConnectionResetError):
            raise self._error("o decodificador terminou") from None

    async def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._proc is None:
            self._started.set()  # nothing was written: chunks() ends at once
            return
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self._proc.stdin.wait_closed()

    async def chunks(self) -> AsyncIterator[PcmChunk]:
        await self._started.wait()
        proc = self._proc
        if proc is None:
            return
        assert proc.stdout is not None
        carry = b""
        while True:
            data = await proc.stdout.read(READ_BYTES)
            if not data:
                break
            data = carry + data
            usable = len(data) - len(data) % 2
            carry = data[usable:]
            if usable:
                yield PcmChunk(np.frombuffer(data[:usable], dtype="<i2").astype(np.int16), self._last_arrival)
        code = await proc.wait()
        if self._stderr_task is not None:
            await self._stderr_task
        if self._closed:
            return
        if code != 0 or self._fatal is not None:
            raise self._error(f"ffmpeg saiu com código {code}")

    async def aclose(self) -> None:
        """Kill and reap the child, whatever state it is in."""
        self._closed = True
        self._started.set()
        proc = self._proc
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(Exception):
                await proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
        if self._stderr_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stderr_task, 2.0)


def decode_audio_file(path: Path, exe: str | None = None, timeout_s: float = 120.0) -> np.ndarray:
    """A whole audio file ffmpeg reads (WAV, Ogg/Opus, WebM, MP3, FLAC, M4A, ...) as 16 kHz mono int16.

    Blocking (a child process): for enrolment from the CLI or an upload, run it off the event loop.
    A path rather than a pipe, because some containers (MP4/M4A) put their index at the end.
    """
    try:
        proc = subprocess.run(
            [exe or ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path), "-vn",
             "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000", "pipe:1"],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise DecodeError("audio_invalido", f"{path.name}: decoding took longer than {timeout_s:g} s") from None
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = detail[-1] if detail else f"ffmpeg exited with code {proc.returncode}"
        raise DecodeError("audio_invalido", f"{path.name} is not an audio file ffmpeg can read: {reason}")
    samples = np.frombuffer(proc.stdout[: len(proc.stdout) - len(proc.stdout) % 2], dtype="<i2").astype(np.int16)
    if samples.size == 0:
        raise DecodeError("audio_invalido", f"{path.name} has no audio")
    return samples
