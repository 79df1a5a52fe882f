"""Per-organization request limits, counted in fixed one-minute windows on this node."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

WINDOW_S = 60.0
_MAX_TRACKED = 100_000


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        return {"x-ratelimit-limit": str(self.limit), "x-ratelimit-remaining": str(self.remaining)}


class RateLimiter:
    """Counts each organization's cost in the current minute; refuses what exceeds its limit."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[UUID, tuple[int, int]] = {}

    def hit(self, org_id: UUID, limit: int, cost: int = 1) -> Decision:
        now = self._clock()
        window = int(now // WINDOW_S)
        start, used = self._windows.get(org_id, (window, 0))
        if start != window:
            used = 0
        if used + cost > limit:
            retry = max(1, math.ceil((window + 1) * WINDOW_S - now))
            return Decision(False, limit, max(0, limit - used), retry)
        if len(self._windows) >= _MAX_TRACKED and org_id not in self._windows:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        self._windows[org_id] = (window, used + cost)
        return Decision(True, limit, limit - used - cost, 0)
