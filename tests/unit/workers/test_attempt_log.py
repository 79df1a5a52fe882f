"""One line per failed attempt (INFO, WARNING for a dead letter), successes sampled."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from workers.attempt_log import AttemptLog
from workers.deliverer import Job, Outcome

ACCEPTED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _outcome(kind: str = "http_error", status: int | None = 500,
             error: str | None = "HTTP 500") -> Outcome:
    job = Job(delivery_id=42, event_id="ev-1", event_type="t", payload="{}",
              created_at=ACCEPTED, endpoint_id="ep-1", url="http://x/", secrets=("s",),
              attempt=3, org_id="org-1")
    return Outcome(job, kind, status, 12.34, error, None, None)


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "workers.attempt_log"]


def test_a_failed_attempt_is_one_line_with_its_ids(caplog: pytest.LogCaptureFixture) -> None:
    retry_at = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
    with caplog.at_level(logging.INFO, logger="workers.attempt_log"):
        AttemptLog("n1").recorded(_outcome(), "failed", retry_at, None)
    [record] = _records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == ("delivery 42 attempt 3 failed: HTTP 500; next attempt at "
                                   "2024-05-01T12:00:30.000+00:00")
    fields = record.__dict__
    assert (fields["node"], fields["org_id"], fields["endpoint_id"], fields["event_id"],
            fields["delivery_id"], fields["attempt"]) == ("n1", "org-1", "ep-1", "ev-1", 42, 3)
    assert (fields["outcome"], fields["response_status"], fields["duration_ms"],
            fields["error"]) == ("http_error", 500, 12.3, "HTTP 500")


def test_a_dead_letter_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="workers.attempt_log"):
        AttemptLog("n1").recorded(_outcome("timeout", None, "timed out after 1s"),
                                  "dead_letter", None, None)
    [record] = _records(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith("timed out after 1s; now a dead letter")
    assert record.__dict__["response_status"] is None


def test_successes_are_logged_only_when_sampled(caplog: pytest.LogCaptureFixture) -> None:
    draws = iter([0.05, 0.5, 0.09])
    delivered = _outcome("delivered", 200, None)
    with caplog.at_level(logging.INFO, logger="workers.attempt_log"):
        AttemptLog("n1").recorded(delivered, "delivered", None, 1.5)  # default: never
        sampled = AttemptLog("n1", 0.1, draw=lambda: next(draws))
        for _ in range(3):
            sampled.recorded(delivered, "delivered", None, 1.5)
        AttemptLog("n1", 1.0, draw=lambda: 1 / 0).recorded(delivered, "delivered", None, 0.25)
    records = _records(caplog)
    assert len(records) == 3  # 0.05 and 0.09 drew under 0.1; 1.0 logs without a draw
    assert records[0].getMessage() == ("delivery 42 delivered on attempt 3 in 12.3 ms, "
                                       "1.500 s after acceptance")
    assert records[-1].__dict__["latency_s"] == 0.25


def test_the_sample_is_a_share() -> None:
    with pytest.raises(ValueError, match="delivered_sample"):
        AttemptLog("n1", 1.5)
