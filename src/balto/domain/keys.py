"""API keys: how they are made and how they are stored (only a hash, never the key)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "bk_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force, and
    # the lookup stays one indexed equality per handshake.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    """A short, non-secret handle that lets an operator tell keys apart in listings."""
    return key[: len(KEY_PREFIX) + 6]


@dataclass(frozen=True)
class ApiKey:
    id: int
    balcao_id: str
    prefix: str
    revoked: bool = False
    created_at: float | None = None
