"""When a failed delivery is tried again: the retry schedule and `Retry-After`.

`RetrySchedule` holds the delays between attempts (`TRIGGERD_RETRY_SCHEDULE`, parsed by
the node; default 5s,30s,2m,10m,30m,1h,3h, so 8 attempts). After the n-th failed attempt
the next one is due after `delays[n-1]` with +/-20 % jitter; after the last, none (the
delivery becomes a dead letter).

`retry_delay` applies the outcome rules of the design (section 5):

- 429 and 503 honour `Retry-After` (delta-seconds or an HTTP-date), clamped between the
  scheduled (jittered) delay and twice the scheduled delay: a receiver can slow us down,
  but neither hurry us nor park a delivery for a day.
- For 429 and for timeouts the delay is at least 60 s -- unless the schedule is shorter,
  read as: unless the schedule's longest delay is under 60 s. A short schedule such as
  1s,2s,4s,8s,16s (tests, demos) is then followed as written, while under the default
  schedule a 429 or a timeout after the first attempt waits 60 s rather than 5 s.
- `Retry-After` never adds attempts: once the schedule is exhausted the answer is None.

Pure values and functions: no process, no messages, no restart type.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

DEFAULT_DELAYS: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 10800.0)
THROTTLE_FLOOR_S = 60.0
RETRY_AFTER_STATUSES = frozenset({429, 503})
_rng = random.Random()


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Delays in seconds between attempts; `jitter` is a fraction (0.2 = +/-20 %)."""

    delays: tuple[float, ...] = DEFAULT_DELAYS
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not self.delays:
            raise ValueError("a retry schedule needs at least one delay")
        if any(not math.isfinite(d) or d <= 0 for d in self.delays):
            raise ValueError(f"retry delays must be positive, got {self.delays}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first one plus one per delay."""
        return len(self.delays) + 1

    def scheduled_delay(self, attempts_made: int) -> float | None:
        """The delay after the `attempts_made`-th failed attempt, without jitter."""
        if attempts_made < 1:
            raise ValueError(f"attempts_made must be >= 1, got {attempts_made}")
        if attempts_made >= self.max_attempts:
            return None
        return self.delays[attempts_made - 1]

    def next_delay(self, attempts_made: int, rng: random.Random | None = None) -> float | None:
        """The jittered delay after the `attempts_made`-th failed attempt; None when
        no attempt is left."""
        base = self.scheduled_delay(attempts_made)
        return None if base is None else self._jittered(base, rng)

    def retry_delay(self, attempts_made: int, *, status: int | None = None,
                    timed_out: bool = False, retry_after: float | None = None,
                    rng: random.Random | None = None) -> float | None:
        """The delay before the next attempt after a failed one, or None when no attempt
        is left; `status` is the HTTP status (None without a response), `retry_after`
        the parsed `Retry-After` header in seconds."""
        base = self.scheduled_delay(attempts_made)
        if base is None:
            return None
        delay = self._jittered(base, rng)
        if status in RETRY_AFTER_STATUSES and retry_after is not None:
            delay = min(max(retry_after, delay), 2 * base)
        if (status == 429 or timed_out) and max(self.delays) >= THROTTLE_FLOOR_S:
            delay = max(delay, THROTTLE_FLOOR_S)
        return delay

    def _jittered(self, base: float, rng: random.Random | None) -> float:
        return base * (rng or _rng).uniform(1 - self.jitter, 1 + self.jitter)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or an HTTP-date), given
    `now` as a Unix time; None when absent, unparsable, negative or already past."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until_date(value, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until_date(value: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - now
    return seconds if seconds >= 0 else None
