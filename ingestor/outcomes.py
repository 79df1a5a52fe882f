"""What a request is told when its events were not simply committed.

A reply from the EventWriter (or the request's own commit timer) becomes a `Failure`
with one of four statuses, and the answer follows from it:

- not_stored: plain 503 with Retry-After. Always true: the event is not in PostgreSQL
  and never will be (retrying is safe, even without a dedup_id).
- unknown: 503 with Retry-After, `"outcome": "unknown"` and the event's `id`: it may be
  stored; `GET /api/events/{id}` tells (a 404 there, once the node answers again, means
  it is not).
- rejected: 400, PostgreSQL refused the event's data (without quoting the driver).
- internal: 500, a bug, logged and counted where it happened; never retried.

A batch answers per item: `results` lists every item's id and status (accepted,
duplicate, not_stored, unknown, rejected, failed) whenever any of them may be stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingestor import metrics
from ingestor.errors import ApiError
from ingestor.http import RETRY_AFTER_S, unavailable
from ingestor.pending import (
    EventRejected,
    OutcomeUnknown,
    Pending,
    WriteFailed,
    WriterUnavailable,
    Written,
)


class CommitTimeout(Exception):
    """The request's commit timeout passed before its event was answered."""


@dataclass(frozen=True, slots=True)
class Failure:
    id: str  # the event's
    status: str  # not_stored, unknown, rejected or internal
    reason: str


def failure(pending: Pending, exc: BaseException) -> Failure:
    """What `exc`, the reply of `pending`, means for the client; counts the refusal."""
    if isinstance(exc, CommitTimeout) and not pending.sent:
        metrics.REJECTED["commit_timeout"].inc()
        return Failure(pending.id, "not_stored", "Commit timed out")
    if isinstance(exc, CommitTimeout | OutcomeUnknown):
        metrics.REJECTED["outcome_unknown"].inc()
        reason = "the commit timeout passed" if isinstance(exc, CommitTimeout) else str(exc)
        return Failure(pending.id, "unknown", reason)
    if isinstance(exc, WriterUnavailable):
        metrics.REJECTED["unavailable"].inc()
        return Failure(pending.id, "not_stored", "Database unavailable")
    if isinstance(exc, EventRejected):
        return Failure(pending.id, "rejected", str(exc))
    if not isinstance(exc, WriteFailed):  # the writer counts its own
        metrics.internal_error("writer")
    return Failure(pending.id, "internal", "Internal error")


def single_error(fail: Failure) -> ApiError:
    """The answer to POST /api/events for an event that was not committed."""
    if fail.status == "not_stored":
        return unavailable(fail.reason)
    if fail.status == "unknown":
        return ApiError(503, f"Commit outcome unknown: {fail.reason}", id=fail.id,
                        outcome="unknown", headers={"Retry-After": RETRY_AFTER_S})
    if fail.status == "rejected":
        return ApiError(400, f"Event refused by the database: {fail.reason}")
    return ApiError(500, "Internal error")


_ITEM_STATUS = {"not_stored": "not_stored", "unknown": "unknown", "rejected": "rejected",
                "internal": "failed"}


def batch_error(outcomes: list[Written | Failure], dedup_ids: list[str | None]) -> ApiError:
    """The answer to POST /api/events/batch when an item was not committed."""
    failures = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, Failure)]
    statuses = {o.status for _, o in failures}
    first = failures[0][1]
    stored = any(isinstance(o, Written) and not o.duplicate for o in outcomes)
    if "unknown" in statuses:
        reason = next(o.reason for _, o in failures if o.status == "unknown")
        return ApiError(503, f"Commit outcome unknown: {reason}", outcome="unknown",
                        results=_results(outcomes, dedup_ids),
                        headers={"Retry-After": RETRY_AFTER_S})
    extra: dict[str, Any] = {}
    if stored:
        extra = {"outcome": "partial", "results": _results(outcomes, dedup_ids)}
    if "rejected" in statuses:
        index, rejected = next((i, o) for i, o in failures if o.status == "rejected")
        message = "Some events were not stored" if stored else (
            f"Event refused by the database: {rejected.reason}")
        return ApiError(400, message, index=index, **extra)
    if "internal" in statuses:
        return ApiError(500, "Internal error", **extra)
    if stored:
        return ApiError(503, "Some events were not stored", headers={"Retry-After": RETRY_AFTER_S},
                        **extra)
    return unavailable(first.reason)


def _results(outcomes: list[Written | Failure],
             dedup_ids: list[str | None]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for outcome, dedup_id in zip(outcomes, dedup_ids, strict=True):
        if isinstance(outcome, Written):
            item = {"id": outcome.id, "status": "duplicate" if outcome.duplicate else "accepted"}
        else:
            item = {"id": outcome.id, "status": _ITEM_STATUS[outcome.status]}
        if dedup_id is not None:
            item["dedup_id"] = dedup_id
        results.append(item)
    return results
