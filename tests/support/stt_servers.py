"""Small HTTP servers on 127.0.0.1 that answer as the transcription vendors' documented APIs do, so the
real `assemblyai`, `elevenlabs` and `openai` SDKs make real HTTP calls in tests.

- AssemblyAI (https://www.assemblyai.com/docs/api-reference): POST /v2/upload (raw bytes) ->
  {"upload_url"}; POST /v2/transcript {"audio_url", "language_code", ...} -> the transcript, queued;
  GET /v2/transcript/{id} -> processing ... then completed (text, confidence, words) or error.
  Auth: `authorization: <key>`; 401 {"error": "Authentication error, API token missing/invalid"}.
- ElevenLabs (https://elevenlabs.io/docs/api-reference/speech-to-text/convert): POST /v1/speech-to-text,
  multipart (model_id, file, language_code) -> {"language_code", "language_probability", "text",
  "words": [{"text", "start", "end", "type", "logprob"}]}. Auth: `xi-api-key`; 401 {"detail": {...}}.
- OpenAI (https://platform.openai.com/docs/api-reference/audio/createTranscription): POST
  /v1/audio/transcriptions, multipart (file, model, language, response_format) -> `json` {"text"} or
  `verbose_json` {"task", "language", "duration", "text", "segments": [...]}. Auth: `Bearer <key>`.

Each request takes the next scripted `SttReply` (or the default one). Every uploaded file is opened
as WAV and its format recorded, so tests see what the adapters really sent.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import threading
import time
import uuid
import wave
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


@dataclass
class SttReply:
    """What the server does for one transcription."""

    text: str = "Bom dia"
    status: int = 200  # an error status for the step named by `step`
    body: str | None = None  # raw body instead of the normal answer (malformed JSON, vendor error...)
    delay_s: float = 0.0  # before answering `step`
    step: str = "upload"  # AssemblyAI: which step `status`/`body`/`delay_s` apply to: upload, transcript, poll
    polls: int = 1  # AssemblyAI: GETs answered "processing" before the final one
    job_error: str | None = None  # AssemblyAI: the transcript ends with status "error" and this message
    segments: list[dict[str, Any]] | None = None  # OpenAI verbose_json: segments instead of one clean one
    language: str | None = None


@dataclass
class Upload:
    sample_rate: int
    channels: int
    sample_width: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    upload: Upload | None = None


class BadRequest(Exception):
    pass


class StubServer:
    """The HTTP plumbing; subclasses answer the routes of one vendor."""

    api_key = "test-key"
    base_path = ""

    def __init__(self) -> None:
        self.default = SttReply()
        self.script: list[SttReply] = []
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # A short poll interval: shutdown waits for it, once per server, at the end of the session.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.base_path}"

    def reset(self) -> None:
        with self.lock:
            self.default = SttReply()
            self.script.clear()
            self.requests.clear()
            self.reset_state()

    def reset_state(self) -> None:
        pass

    def next_reply(self) -> SttReply:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.requests.append(seen)

    def handle(self, seen: Seen, raw: bytes) -> tuple[int, Any]:
        raise NotImplementedError

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0) or 0)
            if length == 0 and self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self._serve(self._read_chunked())
            else:
                self._serve(self.rfile.read(length))

        def _read_chunked(self) -> bytes:
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()

        def _serve(self, raw: bytes) -> None:
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            # Recorded as it arrives: a request held by a scripted delay belongs to the test that made
            # it, not to whichever test is running when the delay ends.
            stub.record(seen)
            try:
                status, payload = stub.handle(seen, raw)
            except BadRequest as exc:
                status, payload = 400, {"error": str(exc)}
            text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
            data = text.encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

    return Handler


def read_wav(data: bytes) -> Upload:
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            return Upload(wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise BadRequest(f"the file is not a WAV: {exc}") from None


def read_multipart(headers: dict[str, str], raw: bytes) -> tuple[dict[str, str], bytes | None]:
    content_type = headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequest(f"expected multipart/form-data, got {content_type!r}")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    form: dict[str, str] = {}
    file: bytes | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            file = payload
        elif isinstance(name, str):
            form[name] = payload.decode("utf-8")
    return form, file


def words_of(text: str) -> list[dict[str, Any]]:
    words, t = [], 0.1
    for word in text.split():
        words.append({"text": word, "start": round(t, 2), "end": round(t + 0.3, 2), "type": "word", "logprob": -0.05})
        gap = {"text": " ", "start": round(t + 0.3, 2), "end": round(t + 0.35, 2), "type": "spacing", "logprob": 0.0}
        words.append(gap)
        t += 0.35
    return words[:-1]


class AssemblyAIStub(StubServer):
    UNAUTHORIZED: ClassVar[dict[str, Any]] = {"error": "Authentication error, API token missing/invalid"}

    def reset_state(self) -> None:
        self.uploads: dict[str, SttReply] = {}
        self.jobs: dict[str, dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.reset_state()

    @property
    def polls(self) -> int:
        return sum(1 for r in self.requests if r.method == "GET")

    def handle(self, seen: Seen, raw: bytes) -> tuple[int, Any]:
        if seen.headers.get("authorization") != self.api_key:
            return 401, self.UNAUTHORIZED
        if seen.method == "POST" and seen.path == "/v2/upload":
            reply = self.next_reply()
            seen.upload = read_wav(raw)
            if failed := self._step(reply, "upload"):
                return failed
            url = f"https://cdn.assemblyai.com/upload/{uuid.uuid4().hex}"
            with self.lock:
                self.uploads[url] = reply
            return 200, {"upload_url": url}
        if seen.method == "POST" and seen.path == "/v2/transcript":
            seen.json = json.loads(raw)
            with self.lock:
                reply = self.uploads.get(seen.json.get("audio_url"))
            if reply is None:
                return 400, {"error": "Download error, unable to download the audio_url"}
            if failed := self._step(reply, "transcript"):
                return failed
            job = {**seen.json, "id": uuid.uuid4().hex, "status": "queued", "reply": reply, "polls": reply.polls}
            with self.lock:
                self.jobs[job["id"]] = job
            return 200, self._public(job)
        if seen.method == "GET" and seen.path.startswith("/v2/transcript/"):
            with self.lock:
                job = self.jobs.get(seen.path.rsplit("/", 1)[1])
            if job is None:
                return 404, {"error": "Transcript lookup error, transcript id not found"}
            reply = job["reply"]
            if job["polls"] > 0:
                job["polls"] -= 1
                job["status"] = "processing"
                return 200, self._public(job)
            if failed := self._step(reply, "poll"):
                return failed
            if reply.job_error:
                job.update(status="error", error=reply.job_error)
            else:
                job.update(
                    status="completed",
                    text=reply.text,
                    words=[
                        {"text": w, "start": 100 * i, "end": 100 * i + 90, "confidence": 0.9, "speaker": None}
                        for i, w in enumerate(reply.text.split())
                    ],
                    confidence=0.93,
                    audio_duration=2,
                    language_code=reply.language or job.get("language_code") or "pt",
                )
            return 200, self._public(job)
        return 404, {"error": f"no route {seen.method} {seen.path}"}

    @staticmethod
    def _step(reply: SttReply, step: str) -> tuple[int, Any] | None:
        if reply.step != step:
            return None
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            return reply.status, reply.body or {"error": "Internal server error"}
        if reply.body is not None:
            return 200, reply.body
        return None

    @staticmethod
    def _public(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if k not in ("reply", "polls")}


class ElevenLabsStub(StubServer):
    UNAUTHORIZED: ClassVar[dict[str, Any]] = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}

    def handle(self, seen: Seen, raw: bytes) -> tuple[int, Any]:
        if seen.headers.get("xi-api-key") != self.api_key:
            return 401, self.UNAUTHORIZED
        if seen.method != "POST" or seen.path.split("?")[0] != "/v1/speech-to-text":
            return 404, {"detail": f"no route {seen.method} {seen.path}"}
        seen.form, file = read_multipart(seen.headers, raw)
        if file is None:
            return 422, {"detail": [{"loc": ["body", "file"], "msg": "field required", "type": "value_error"}]}
        seen.upload = read_wav(file)
        reply = self.next_reply()
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            return reply.status, reply.body or {"detail": {"status": "internal_error", "message": "scripted failure"}}
        if reply.body is not None:
            return 200, reply.body
        return 200, {
            "language_code": reply.language or "por",
            "language_probability": 0.98,
            "text": reply.text,
            "words": words_of(reply.text),
            "transcription_id": uuid.uuid4().hex,
        }


class OpenAIAudioStub(StubServer):
    base_path = "/v1"
    UNAUTHORIZED: ClassVar[dict[str, Any]] = {
        "error": {
            "message": "Incorrect API key provided",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }

    def handle(self, seen: Seen, raw: bytes) -> tuple[int, Any]:
        if seen.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, self.UNAUTHORIZED
        if seen.method != "POST" or seen.path != "/v1/audio/transcriptions":
            return 404, {"error": {"message": f"no route {seen.method} {seen.path}"}}
        seen.form, file = read_multipart(seen.headers, raw)
        if file is None:
            return 400, {"error": {"message": "file is required", "type": "invalid_request_error"}}
        seen.upload = read_wav(file)
        reply = self.next_reply()
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            return reply.status, reply.body or {"error": {"message": "The server had an error", "type": "server_error"}}
        if reply.body is not None:
            return 200, reply.body
        if seen.form.get("response_format") != "verbose_json":
            return 200, {
                "text": reply.text,
                "logprobs": [{"token": w, "logprob": -0.1, "bytes": []} for w in reply.text.split()],
                "usage": {"type": "duration", "seconds": 2},
            }
        segments = reply.segments
        if segments is None:
            segments = [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 0.0,
                    "end": seen.upload.duration_s,
                    "text": f" {reply.text}",
                    "tokens": [50364, 1234],
                    "temperature": 0.0,
                    "avg_logprob": -0.2,
                    "compression_ratio": 0.9,
                    "no_speech_prob": 0.02,
                }
            ]
        return 200, {
            "task": "transcribe",
            "language": reply.language or "portuguese",
            "duration": seen.upload.duration_s,
            "text": " ".join(s["text"].strip() for s in segments),
            "segments": segments,
        }


# -- the real adapters, aimed at these servers ---------------------------------------------------


def assemblyai_transcriber(server: AssemblyAIStub, timeout_s: float = 3.0, api_key: str | None = None, **kwargs: Any):
    from balto.adapters.assemblyai import AssemblyAITranscriber, assemblyai_client

    client = assemblyai_client(api_key or server.api_key, server.base_url, timeout_s, poll_interval_s=0.02)
    return AssemblyAITranscriber(client, timeout_s=timeout_s, **kwargs)


def elevenlabs_transcriber(server: ElevenLabsStub, timeout_s: float = 3.0, api_key: str | None = None, **kwargs: Any):
    from balto.adapters.elevenlabs import ElevenLabsTranscriber, elevenlabs_client

    client, _http = elevenlabs_client(api_key or server.api_key, server.base_url, timeout_s)
    return ElevenLabsTranscriber(client, timeout_s=timeout_s, **kwargs)


def openai_transcriber(server: OpenAIAudioStub, timeout_s: float = 3.0, api_key: str | None = None, **kwargs: Any):
    import openai

    from balto.adapters.openai_stt import OpenAITranscriber

    client = openai.AsyncOpenAI(
        api_key=api_key or server.api_key, base_url=server.base_url, timeout=timeout_s, max_retries=0
    )
    return OpenAITranscriber(client, **kwargs)


VENDOR_FACTORIES = {
    "assemblyai": assemblyai_transcriber,
    "elevenlabs": elevenlabs_transcriber,
    "openai": openai_transcriber,
}
