"""Retry schedule: attempts, jitter bounds, Retry-After clamping and the 60 s floor."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from workers.schedule import DEFAULT_DELAYS, RetrySchedule, parse_retry_after

SHORT = RetrySchedule((1.0, 2.0, 4.0, 8.0, 16.0))
EXACT = RetrySchedule(DEFAULT_DELAYS, jitter=0.0)


def test_default_schedule_gives_eight_attempts() -> None:
    schedule = RetrySchedule()
    assert schedule.delays == (5, 30, 120, 600, 1800, 3600, 10800)
    assert schedule.max_attempts == 8
    assert SHORT.max_attempts == 6


def test_delays_follow_the_schedule_then_stop() -> None:
    assert [EXACT.next_delay(n) for n in range(1, 9)] == [*DEFAULT_DELAYS, None]
    assert EXACT.next_delay(20) is None


def test_jitter_stays_within_twenty_percent_and_varies() -> None:
    rng = random.Random(7)
    schedule = RetrySchedule()
    for attempts_made, base in enumerate(DEFAULT_DELAYS, start=1):
        delays = {schedule.next_delay(attempts_made, rng) for _ in range(200)}
        assert all(d is not None and 0.8 * base <= d <= 1.2 * base for d in delays)
        assert len(delays) > 100


def test_same_seed_same_delays() -> None:
    first = [RetrySchedule().next_delay(3, random.Random(1)) for _ in range(3)]
    assert len(set(first)) == 1


@pytest.mark.parametrize("kwargs", [{"delays": ()}, {"delays": (1.0, 0.0)},
                                    {"delays": (float("inf"),)}, {"jitter": 1.0},
                                    {"jitter": -0.1}])
def test_bad_schedules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetrySchedule(**kwargs)  # type: ignore[arg-type]


def test_attempts_are_counted_from_one() -> None:
    with pytest.raises(ValueError):
        EXACT.next_delay(0)


def test_plain_failure_uses_the_schedule() -> None:
    assert EXACT.retry_delay(1, status=500) == 5.0
    assert EXACT.retry_delay(2, status=None) == 30.0
    assert EXACT.retry_delay(8, status=500) is None


def test_429_and_timeout_wait_at_least_a_minute_on_a_long_schedule() -> None:
    assert EXACT.retry_delay(1, status=429) == 60.0
    assert EXACT.retry_delay(1, timed_out=True) == 60.0
    assert EXACT.retry_delay(3, status=429) == 120.0
    assert EXACT.retry_delay(1, status=503) == 5.0  # the floor is for 429 and timeouts only


def test_short_schedule_has_no_floor() -> None:
    exact_short = RetrySchedule(SHORT.delays, jitter=0.0)
    assert exact_short.retry_delay(1, status=429) == 1.0
    assert exact_short.retry_delay(2, timed_out=True) == 2.0
    assert exact_short.retry_delay(1, status=429, retry_after=7.0) == 2.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_clamped_between_the_delay_and_twice_it(status: int) -> None:
    # Third failure: scheduled 120 s (over the 60 s floor).
    assert EXACT.retry_delay(3, status=status, retry_after=7.0) == 120.0
    assert EXACT.retry_delay(3, status=status, retry_after=200.0) == 200.0
    assert EXACT.retry_delay(3, status=status, retry_after=86_400.0) == 240.0


def test_retry_after_is_ignored_for_other_statuses() -> None:
    assert EXACT.retry_delay(3, status=500, retry_after=200.0) == 120.0


def test_retry_after_adds_no_attempts() -> None:
    assert EXACT.retry_delay(8, status=429, retry_after=5.0) is None


def test_429_floor_applies_after_clamping() -> None:
    # Scheduled 5 s, Retry-After 7 s: clamped to 7..10 s, then raised to the 60 s floor.
    assert EXACT.retry_delay(1, status=429, retry_after=7.0) == 60.0
    assert EXACT.retry_delay(1, status=503, retry_after=7.0) == 7.0


def test_jittered_retry_delay_stays_in_bounds() -> None:
    rng = random.Random(3)
    for _ in range(200):
        delay = RetrySchedule().retry_delay(4, status=503, retry_after=10_000.0, rng=rng)
        assert delay == 1200.0
        delay = RetrySchedule().retry_delay(4, status=503, rng=rng)
        assert delay is not None and 480.0 <= delay <= 720.0


@pytest.mark.parametrize("value, expected", [
    ("7", 7.0), (" 120 ", 120.0), ("0", 0.0), ("1.5", 1.5),
    (None, None), ("", None), ("-1", None), ("soon", None), ("nan", None), ("inf", None),
])
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=1_000_000.0) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2024, 5, 1, 12, 1, 30, tzinfo=UTC), usegmt=True)
    assert later == "Wed, 01 May 2024 12:01:30 GMT"
    assert parse_retry_after(later, now) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 11:59:00 GMT", now) is None
    assert parse_retry_after("Wed, 99 Foo 2024 11:59:00 GMT", now) is None
