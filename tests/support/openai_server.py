"""A small OpenAI-compatible chat-completions server on 127.0.0.1, so the real `openai` SDK makes real
HTTP calls in tests. Each request takes the next scripted behaviour (or the default one)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server does for one request."""

    content: str | None = None  # assistant message content
    status: int = 200
    body: str | None = None  # raw body for error statuses
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After on a 429

    @classmethod
    def suggestions(cls, *texts: str) -> Reply:
        return cls(content=json.dumps({"sugestoes": list(texts)}, ensure_ascii=False))


@dataclass
class OpenAIStub:
    default: Reply = field(default_factory=lambda: Reply.suggestions("Ofereça um analgésico"))
    script: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self) -> Reply:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def reset(self, default: Reply | None = None) -> None:
        with self._lock:
            self.script.clear()
            self.requests.clear()
            self.headers.clear()
            if default is not None:
                self.default = default


def _handler(stub: OpenAIStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                return
            with stub._lock:
                stub.requests.append(body)
                stub.headers.append(dict(self.headers))
            reply = stub.next_reply()
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.status != 200:
                error = reply.body or json.dumps({"error": {"message": "scripted failure", "type": "server_error"}})
                self._send(reply.status, error, reply.headers)
                return
            payload = {
                "id": f"chatcmpl-{len(stub.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "stub"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
            self._send(200, json.dumps(payload, ensure_ascii=False))

        def _send(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
            data = text.encode("utf-8")
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

    return Handler


class OpenAIServer:
    def __init__(self, stub: OpenAIStub | None = None) -> None:
        self.stub = stub or OpenAIStub()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.stub))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
