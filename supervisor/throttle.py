"""Throttle: one log line per period for a condition that repeats, with a count.

During an outage the same warning would otherwise be written once per request or per
tick; a Throttle writes the first at once, holds back the rest for `period` seconds,
and says how many it held back in the next line it writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttle:
    def __init__(self, period: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if period <= 0:
            raise ValueError(f"Throttle period must be > 0, got {period}")
        self.period = period
        self._clock = clock
        self._next = float("-inf")
        self._held = 0

    def log(self, logger: logging.Logger, level: int, message: str, *args: object) -> bool:
        """Writes `message % args` unless a line went out less than `period` ago; True
        when it was written."""
        now = self._clock()
        if now < self._next:
            self._held += 1
            return False
        held, self._held = self._held, 0
        self._next = now + self.period
        if held:
            message += f" ({held} more like it in the last {self.period:g}s)"
        logger.log(level, message, *args)
        return True

    def __repr__(self) -> str:
        return f"Throttle(period={self.period:g}, held={self._held})"
