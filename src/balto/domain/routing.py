"""SMART_ROUTING's decisions between transcription providers: which to try, in what order, and when
one is resting. Pure: time comes in as `now` (seconds), nothing here waits or calls anyone."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # skipped until the cool-down ends
    HALF_OPEN = "half_open"  # cool-down over: one probe call decides


@dataclass
class CircuitBreaker:
    """Per-provider circuit breaker.

    CLOSED: every call goes through; `failures` failures within `window_s` seconds open it.
    OPEN: `allow` says no until `cooldown_s` seconds have passed since it opened; then the breaker
    is HALF_OPEN and exactly one caller gets through as the probe (concurrent callers keep skipping).
    The probe's success closes it and forgets past failures; its failure opens it for another
    cool-down. A probe that ends without a verdict (cancelled) lets the next caller probe instead.
    """

    failures: int = 3
    window_s: float = 60.0
    cooldown_s: float = 30.0
    state: BreakerState = BreakerState.CLOSED
    opened_at: float | None = None
    _recent: deque[float] = field(default_factory=deque)
    _probing: bool = False

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window_s <= 0 or self.cooldown_s <= 0:
            raise ValueError("a circuit breaker needs failures >= 1 and a positive window and cool-down")

    def allow(self, now: float) -> bool:
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            assert self.opened_at is not None
            if now - self.opened_at < self.cooldown_s:
                return False
            self.state = BreakerState.HALF_OPEN
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self, now: float) -> BreakerState:
        """The call went through; returns the state before, so callers can log a recovery."""
        before = self.state
        self.state, self.opened_at, self._probing = BreakerState.CLOSED, None, False
        self._recent.clear()
        return before

    def record_failure(self, now: float) -> bool:
        """The call failed; True when this failure opened (or re-opened) the breaker."""
        if self.state is BreakerState.HALF_OPEN:
            self._open(now)
            return True
        if self.state is BreakerState.OPEN:
            return False  # a call let through before it opened, failing late: the clock already runs
        self._recent.append(now)
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        if len(self._recent) >= self.failures:
            self._open(now)
            return True
        return False

    def release(self) -> None:
        """A probe ended without a verdict (cancelled): let the next caller probe."""
        self._probing = False

    def retry_in(self, now: float) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (now - self.opened_at))

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self._probing = BreakerState.OPEN, now, False
        self._recent.clear()


@dataclass(frozen=True)
class RoutingPolicy:
    """The order providers are tried in for one segment.

    Segments shorter than `short_segment_s` go first to `short_provider` (local Whisper by default):
    for a one-word segment a remote call's upload and queueing cost more than the transcription.
    If it fails, the regular order follows. `short_provider` need not be in `providers`; then it
    serves only short segments.
    """

    providers: tuple[str, ...]
    short_segment_s: float = 0.0
    short_provider: str | None = None

    def __post_init__(self) -> None:
        if not self.providers:
            raise ValueError("routing needs at least one provider")

    def order(self, duration_s: float) -> tuple[str, ...]:
        short = self.short_provider
        if short is not None and duration_s < self.short_segment_s:
            return (short, *(name for name in self.providers if name != short))
        return self.providers

    @property
    def names(self) -> tuple[str, ...]:
        extra = (self.short_provider,) if self.short_provider else ()
        return tuple(dict.fromkeys((*self.providers, *extra)))
