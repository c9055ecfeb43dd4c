"""Admission rules for counter connections: how many at once (per API key and in total), and how many
failed handshakes an address may make before it is turned away for a while. Time is passed in."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class Refusal(StrEnum):
    SERVER_FULL = "servidor_lotado"
    KEY_FULL = "conexoes_por_chave_excedidas"


@dataclass
class ConnectionSlots:
    """Counts the open connections per key; `take` refuses past either limit (0 means no limit)."""

    max_total: int = 0
    max_per_key: int = 0
    _per_key: dict[int, int] = field(default_factory=dict)
    total: int = 0

    def take(self, key_id: int) -> Refusal | None:
        if self.max_total and self.total >= self.max_total:
            return Refusal.SERVER_FULL
        if self.max_per_key and self._per_key.get(key_id, 0) >= self.max_per_key:
            return Refusal.KEY_FULL
        self._per_key[key_id] = self._per_key.get(key_id, 0) + 1
        self.total += 1
        return None

    def give_back(self, key_id: int) -> None:
        left = self._per_key.get(key_id, 0) - 1
        if left > 0:
            self._per_key[key_id] = left
        else:
            self._per_key.pop(key_id, None)
        self.total = max(0, self.total - 1)

    def held(self, key_id: int) -> int:
        return self._per_key.get(key_id, 0)


@dataclass
class FailedHandshakes:
    """A sliding window of failed handshakes per remote address.

    An address with `max_failures` failures in the last `window_s` seconds is refused until the oldest
    of them leaves the window; 0 turns the rule off. At most `max_addresses` are remembered, so a
    flood of spoofed sources costs bounded memory (the oldest address is forgotten first).
    """

    max_failures: int = 20
    window_s: float = 60.0
    max_addresses: int = 10_000
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def blocked(self, address: str, now: float) -> bool:
        if not self.max_failures:
            return False
        times = self._failures.get(address)
        if times is None:
            return False
        self._expire(times, now)
        if not times:
            del self._failures[address]
            return False
        return len(times) >= self.max_failures

    def failed(self, address: str, now: float) -> None:
        if not self.max_failures:
            return
        times = self._failures.pop(address, None) or deque()
        self._expire(times, now)
        times.append(now)
        while len(times) > self.max_failures:
            times.popleft()
        self._failures[address] = times  # re-inserted: dict order is least recently failed first
        while len(self._failures) > self.max_addresses:
            del self._failures[next(iter(self._failures))]

    def _expire(self, times: deque[float], now: float) -> None:
        while times and now - times[0] >= self.window_s:
            times.popleft()

    def __len__(self) -> int:
        return len(self._failures)
