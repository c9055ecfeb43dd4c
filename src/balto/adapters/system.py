"""The system clock."""

from __future__ import annotations

import time

from balto.ports.system import Clock


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()
