"""A protocol fuzzer (hypothesis) against a real server on 127.0.0.1: random bytes before the
WebSocket upgrade, binary before the handshake, random and wrongly typed JSON, huge frames, truncated
WebM, broken framing, frames after a close. The server must survive all of it, answer every
connection with a documented close code (docs/protocol.md), and keep serving a well-behaved counter
that streams speech the whole time.

Bounded: runs of 150 examples for at least 20 s (about 2,000 connections), each a handful of
frames; WS_MAX_FRAME_BYTES is lowered to 64 KiB so huge frames stay cheap, and the failed-handshake
limit is off here (it would turn most examples into 4429; tests/unit/test_limits.py and
tests/robustness/test_limits_e2e.py cover it).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import threading
import time
from urllib.parse import urlparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.robustness.rawws import DOCUMENTED_CLOSE_CODES, frame, read_close_code, upgrade
from tests.support.encode import webm_opus
from tests.support.live_server import StreamResult, live_server, server_env, stream_pcm

pytestmark = [pytest.mark.e2e]

MAX_FRAME = 64 * 1024

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_server(pg, stt_stub, speech, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    env = server_env(
        pg.url,
        folder / "data",
        stt_stub,
        WS_MAX_FRAME_BYTES=str(MAX_FRAME),
        HANDSHAKE_TIMEOUT_S="2",
        WS_HANDSHAKE_FAILURES_MAX="0",
    )
    with live_server(env, folder / "server.log") as server:
        server.keys = [server.new_key("B-FUZZ-GOOD"), server.new_key("B-FUZZ")]
        webm = webm_opus(speech[: 16_000 * 3], folder)
        yield server, webm


def good_handshakes(key: str):
    return st.fixed_dictionaries(
        {"api_key": st.just(key)},
        optional={
            "transcricao": st.booleans(),
            "audio": st.fixed_dictionaries({"format": st.sampled_from(["auto", "pcm_s16le", "webm", "ogg", "wav"])}),
        },
    ).map(lambda d: ("text", json.dumps(d).encode()))


def handshakes(key: str):
    good = good_handshakes(key)
    wrong = st.fixed_dictionaries(
        {},
        optional={
            "api_key": st.one_of(st.just(key), st.text(max_size=50), st.integers(), st.none(), json_values),
            "vad_settings": st.one_of(
                json_values,
                st.fixed_dictionaries({"threshold_multiplier": st.floats(), "min_energy": st.floats()}),
            ),
            "transcricao": json_values,
            "audio": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {"format": st.text(max_size=10), "sample_rate": st.integers(), "channels": st.integers()}
                ),
            ),
            "extra": json_values,
        },
    )
    return st.one_of(good, wrong.map(lambda d: ("text", json.dumps(d).encode())))


def frames(key: str, webm: bytes):
    commands = st.one_of(
        st.sampled_from(["ping", "fim", "feedback", "?", ""]).map(lambda c: {"comando": c}),
        st.fixed_dictionaries({"comando": st.just("feedback"), "interacao_id": json_values, "util": json_values}),
        json_values,
    ).map(lambda d: ("text", json.dumps(d).encode()))
    return st.one_of(
        handshakes(key),
        commands,
        st.binary(max_size=4096).map(lambda b: ("binary", b)),
        st.integers(1, len(webm) - 1).map(lambda n: ("binary", webm[:n])),  # truncated WebM
        st.integers(MAX_FRAME + 1, 3 * MAX_FRAME).map(lambda n: ("binary", os.urandom(n))),  # huge
        st.binary(min_size=1, max_size=64).map(lambda b: ("text", b)),  # maybe not UTF-8
        st.binary(min_size=1, max_size=64).map(lambda b: ("garbage", b)),  # not a WebSocket frame
        st.just(("close", b"\x03\xe8")),  # then whatever follows is after the close
    )


def run_episode(http_host: str, port: int, steps: list[tuple[str, bytes]]) -> tuple[int | None, bool]:
    """Send the steps over one upgraded connection; return the server's close code and whether we broke
    the framing ourselves (then a dropped connection without a close code is fair)."""
    sock = upgrade(http_host, port)
    broke = False
    try:
        for kind, payload in steps:
            if kind == "garbage":
                sock.sendall(payload)
                broke = True
            elif kind == "close":
                sock.sendall(frame(0x8, payload))
            else:
                if kind == "text":
                    try:
                        payload.decode("utf-8")
                    except UnicodeDecodeError:
                        broke = True  # the WebSocket layer fails the connection (1007), maybe before we read it
                sock.sendall(frame(0x1 if kind == "text" else 0x2, payload))
        sock.sendall(frame(0x1, b'{"comando": "fim"}'))
    except OSError:
        pass  # the server closed already: its close frame may still be in our receive buffer
    try:
        return read_close_code(sock, timeout=15), broke
    finally:
        sock.close()


def raw_bytes_before_upgrade(host: str, port: int, data: bytes) -> None:
    with socket.create_connection((host, port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass


def test_fuzzed_clients_get_documented_codes_and_a_good_client_keeps_its_transcripts(fuzz_server, speech):
    server, webm = fuzz_server
    good_key, fuzz_key = server.keys
    address = urlparse(server.http)
    host, port = address.hostname or "127.0.0.1", address.port or 80

    stop = threading.Event()
    good = StreamResult()

    def good_client() -> None:
        async def run() -> None:
            done = asyncio.Event()

            async def watch() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.1)
                done.set()

            watcher = asyncio.create_task(watch())
            await stream_pcm(server.url, good_key, speech, speed=1.0, stop=done, max_s=600, result=good)
            await watcher

        asyncio.run(run())

    thread = threading.Thread(target=good_client, daemon=True)
    thread.start()
    codes: list[int | None] = []
    episodes: list[str] = []

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    )
    @given(
        episode=st.one_of(
            st.binary(max_size=2048).map(lambda b: ("raw", [("raw", b)])),
            # Most episodes open with a valid handshake, so the fuzz reaches the streaming state.
            st.tuples(
                st.one_of(good_handshakes(fuzz_key), good_handshakes(fuzz_key), frames(fuzz_key, webm)),
                st.lists(frames(fuzz_key, webm), max_size=5),
            ).map(lambda t: ("ws", [t[0], *t[1]])),
        )
    )
    def fuzz(episode):
        kind, steps = episode
        episodes.append(kind)
        if kind == "raw":
            raw_bytes_before_upgrade(host, port, steps[0][1])
            return
        code, broke = run_episode(host, port, steps)
        codes.append(code)
        assert server.alive(), server.log.read_text()[-3000:]
        if code is None:
            assert broke, f"the server dropped a connection without a close code after {steps!r}"
        else:
            assert code in DOCUMENTED_CLOSE_CODES, f"undocumented close code {code} after {steps!r}"

    def transcripts() -> int:
        return len(good.of("transcricao"))

    deadline = time.monotonic() + 60
    while transcripts() < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    before = transcripts()
    assert before >= 1, "the well-behaved client got no transcript before the fuzz started"
    started = time.monotonic()
    try:
        # Each call is a fresh hypothesis run of 150 examples; at least 20 s of fuzz, so the good
        # client's sentences (one every few seconds) fall inside it.
        while time.monotonic() - started < 20:
            fuzz()
        during = transcripts() - before
        deadline = time.monotonic() + 30
        while transcripts() < before + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(90)
    elapsed = time.monotonic() - started
    print(
        f"{len(episodes)} fuzz episodes; close codes:",
        sorted(collections.Counter(codes).items(), key=str),
        f"in {elapsed:.0f} s",
    )

    assert server.alive()
    assert server.get("/health")[0] == 200
    metrics = server.metrics()
    assert 'balto_ws_closes_total{code="1011"}' not in metrics, "an internal error closed a fuzzed connection"
    # The fixture has a sentence every few seconds: the good client was served during the fuzz and after.
    assert during >= 2, f"the well-behaved client got {during} transcripts in {elapsed:.0f} s of fuzz"
    assert transcripts() >= before + 3
    assert good.of("encerrado") and good.close_code == 1000
    assert len([c for c in codes if c is not None]) > 50
    assert len(set(codes)) >= 4  # the examples reached past the handshake, not only its first check
