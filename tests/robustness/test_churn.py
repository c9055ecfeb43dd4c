"""1,000 connect / stream / abort cycles against a real server, some of them cut off in the middle of a
WebSocket frame, some on WebM (an ffmpeg child each): afterwards no ffmpeg process, no file descriptor
and no asyncio task is left over, and the resident memory grew by less than 20 MB.

The server samples itself for /metrics (balto_ffmpeg_processes, balto_process_open_fds,
balto_asyncio_tasks, balto_process_resident_memory_bytes), which is what this test reads; the open
descriptors are also sorted from /proc, because the database pool and the HTTP pool to the
transcription vendor may keep one more connection after the run than after the warm-up (pooled on
purpose, not leaked). Raw PCM and
tiny frames keep it to about a minute on two cores.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import numpy as np
import pytest

from tests.robustness.rawws import frame, upgrade
from tests.support.encode import webm_opus
from tests.support.live_server import live_server, server_env

pytestmark = [pytest.mark.e2e]

CYCLES = 1000
WARM_UP = 100
MAX_RSS_GROWTH = 20 * 1024 * 1024


def read_first_frame(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    head = b""
    while len(head) < 2:
        head += sock.recv(2 - len(head))
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", sock.recv(2))[0]
    payload = b""
    while len(payload) < length:
        payload += sock.recv(length - len(payload))
    return payload


def cycle(host: str, port: int, key: str, n: int, pcm: bytes, webm: bytes) -> None:
    rng = random.Random(n)
    use_webm = n % 5 == 0
    sock = upgrade(host, port)
    try:
        fmt = "webm" if use_webm else "pcm_s16le"
        sock.sendall(frame(0x1, json.dumps({"api_key": key, "audio": {"format": fmt}}).encode()))
        assert json.loads(read_first_frame(sock))["comando"] == "conectado"
        source = webm if use_webm else pcm
        offset = rng.randrange(0, max(1, len(source) - 20_000)) if not use_webm else 0
        for _ in range(rng.randint(1, 4)):
            size = rng.randint(1, 6400) | (0 if use_webm else rng.randint(0, 1))  # odd sizes split a sample
            sock.sendall(frame(0x2, source[offset : offset + size]))
            offset += size
        ending = rng.choice(("mid_frame", "reset", "fin", "fim"))
        if ending == "mid_frame":
            whole = frame(0x2, source[offset : offset + 3200])
            sock.sendall(whole[: rng.randint(1, len(whole) - 1)])
        elif ending == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        elif ending == "fim":
            sock.sendall(frame(0x1, b'{"comando": "fim"}'))
    finally:
        sock.close()


def descriptors(pid: int, server_port: int, vendor_port: int) -> dict[str, int]:
    """The server's open descriptors by what a leak would look like: sockets of counter connections
    (local port = the server's, not listening), pipes (ffmpeg's stdin, stdout, stderr), keep-alive
    connections to the transcription vendor (an HTTP pool, not a leak), and the rest."""
    tcp: dict[str, tuple[int, int, str]] = {}
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                tcp[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state)
    counts = {"connection_sockets": 0, "pipes": 0, "vendor_sockets": 0, "other": 0}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("pipe:"):
            counts["pipes"] += 1
        elif target.startswith("socket:") and (found := tcp.get(target[8:-1])) is not None:
            local, remote, state = found
            if local == server_port and state != "0A":  # 0A: LISTEN
                counts["connection_sockets"] += 1
            elif remote == vendor_port:
                counts["vendor_sockets"] += 1
            else:
                counts["other"] += 1
        else:
            counts["other"] += 1
    return counts


def settle(server, ports: tuple[int, int], before: dict | None = None, timeout_s: float = 60.0) -> dict:
    """Metrics once the server is idle again (or at the deadline); with `before`, idle means back to it:
    sockets of aborted connections and decoder pipes may take a moment to be closed."""
    deadline = time.monotonic() + timeout_s
    while True:
        metrics = server.metrics()
        metrics["fds"] = descriptors(server.process.pid, *ports)
        idle = (
            metrics["balto_connections_open"] == 0
            and metrics["balto_ffmpeg_processes"] == 0
            and metrics["balto_storage_queue_depth"] == 0
        )
        if before is not None:
            idle = (
                idle
                and metrics["balto_asyncio_tasks"] <= before["balto_asyncio_tasks"]
                and metrics["fds"]["connection_sockets"] == 0
                and metrics["fds"]["pipes"] <= before["fds"]["pipes"]
                and metrics["fds"]["other"] - metrics["balto_db_pool_connections"]
                <= before["fds"]["other"] - before["balto_db_pool_connections"]
            )
        if idle or time.monotonic() > deadline:
            return metrics
        time.sleep(0.5)


def test_a_thousand_aborted_connections_leave_nothing_behind(pg, stt_stub, speech, tmp_path):
    env = server_env(pg.url, tmp_path / "data", stt_stub, WS_MAX_CONNECTIONS_PER_KEY="0")
    pcm = np.tile(speech, 2).astype("<i2").tobytes()
    webm = webm_opus(speech[: 16_000 * 2], tmp_path)
    with live_server(env, tmp_path / "server.log") as server:
        key = server.new_key("B-CHURN")
        address = urlparse(server.http)
        host, port = address.hostname or "127.0.0.1", address.port or 80

        def run(numbers: range) -> None:
            with ThreadPoolExecutor(4) as pool:
                for future in [pool.submit(cycle, host, port, key, n, pcm, webm) for n in numbers]:
                    future.result()

        run(range(WARM_UP))  # imports, pools and caches fill up before the baseline
        ports = (port, urlparse(stt_stub.base_url).port or 80)
        before = settle(server, ports)
        started = time.monotonic()
        peak = {"ffmpeg": 0.0, "open": 0.0}
        done = threading.Event()

        def watch() -> None:  # proof that the cycles really spawned decoders and overlapped
            while not done.is_set():
                metrics = server.metrics()
                peak["ffmpeg"] = max(peak["ffmpeg"], metrics["balto_ffmpeg_processes"])
                peak["open"] = max(peak["open"], metrics["balto_connections_open"])
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            run(range(WARM_UP, WARM_UP + CYCLES))
        finally:
            done.set()
            watcher.join(10)
        elapsed = time.monotonic() - started
        after = settle(server, ports, before)
        assert server.alive()

    growth = after["balto_process_resident_memory_bytes"] - before["balto_process_resident_memory_bytes"]
    print(
        f"{CYCLES} cycles in {elapsed:.0f} s; RSS {before['balto_process_resident_memory_bytes'] / 2**20:.1f} -> "
        f"{after['balto_process_resident_memory_bytes'] / 2**20:.1f} MiB; fds {before['balto_process_open_fds']:g} -> "
        f"{after['balto_process_open_fds']:g} ({before['fds']} -> {after['fds']}, pooled DB "
        f"{before['balto_db_pool_connections']:g} -> {after['balto_db_pool_connections']:g}); "
        f"tasks {before['balto_asyncio_tasks']:g} -> {after['balto_asyncio_tasks']:g}; "
        f"peak ffmpeg {peak['ffmpeg']:g}, peak open {peak['open']:g}"
    )
    assert after["balto_connections_total"] - before["balto_connections_total"] == CYCLES
    assert after["balto_connections_open"] == 0
    assert peak["ffmpeg"] >= 1 and peak["open"] >= 2
    assert after["balto_ffmpeg_processes"] == 0
    assert after["balto_asyncio_tasks"] <= before["balto_asyncio_tasks"]
    # Pools may keep one more connection than after the warm-up (more handshakes or transcriptions
    # overlapped): the database's and the vendor's sockets are counted apart from what a leak would hold.
    fds_before, fds_after = before["fds"], after["fds"]
    assert fds_after["connection_sockets"] == 0
    assert fds_after["pipes"] <= fds_before["pipes"]
    pooled = after["balto_db_pool_connections"] - before["balto_db_pool_connections"]
    assert fds_after["other"] - pooled <= fds_before["other"], (fds_before, fds_after)
    assert growth < MAX_RSS_GROWTH, f"RSS grew by {growth / 2**20:.1f} MiB"
