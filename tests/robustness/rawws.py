"""A WebSocket client at the byte level, for what a well-behaved library will not send: frames after
a close frame, broken framing, a handshake cut short."""

from __future__ import annotations

import base64
import os
import socket
import struct

DOCUMENTED_CLOSE_CODES = frozenset(
    {
        1000,  # normal
        1001,  # server going away
        1002,  # protocol error (the WebSocket layer: broken framing)
        1007,  # invalid UTF-8 in a text frame (the WebSocket layer)
        1009,  # message too big for the WebSocket layer (over 2 x WS_MAX_FRAME_BYTES)
        1013,  # server full
        4400,  # handshake invalid
        4401,  # api_key invalid or revoked
        4408,  # handshake timeout
        4409,  # connections per key
        4410,  # session too long
        4413,  # frame too large
        4415,  # audio format / undecodable audio
        4422,  # vad_settings invalid
        4429,  # too many failed handshakes
        4431,  # audio ahead of real time
    }
)


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def upgrade(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"upgrade refused: {response!r}")
        response += chunk
    if b" 101 " not in response.split(b"\r\n", 1)[0]:
        raise ConnectionError(f"upgrade refused: {response!r}")
    return sock


def read_close_code(sock: socket.socket, timeout: float = 10.0) -> int | None:
    """Read server frames until its close frame (its code) or EOF (None)."""
    sock.settimeout(timeout)
    buffer = b""
    try:
        while True:
            while len(buffer) >= 2:
                length = buffer[1] & 0x7F
                offset = 2
                if length == 126:
                    if len(buffer) < 4:
                        break
                    length, offset = struct.unpack("!H", buffer[2:4])[0], 4
                elif length == 127:
                    if len(buffer) < 10:
                        break
                    length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
                if len(buffer) < offset + length:
                    break
                opcode, payload = buffer[0] & 0x0F, buffer[offset : offset + length]
                buffer = buffer[offset + length :]
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buffer += chunk
    except (TimeoutError, ConnectionError, OSError):
        return None
