"""Operations on deliveries: list them, read one with its attempts, retry one; and on
dead letters: page through them, resolve one (reviewed, not sent again), and re-queue
every dead letter a filter selects; and follow deliveries as they are made (tail).

Plain async functions over `ops_db.Db`, returning `records` or raising
`errors.NotFound` (unknown, or another organization's delivery), `Conflict` (refused in
its current state: `delivery_status` says why) or `Invalid` (a bad cursor).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ingestor import queries_delivery as q
from ingestor.cursors import (
    ID_CURSOR,
    TIME_ID_CURSOR,
    from_micros,
    int_cursor,
    int_position,
    micros,
    page_of,
)
from ingestor.errors import Conflict, NotFound
from ingestor.ops_db import Db, Scope, connection
from ingestor.records import (
    Attempt,
    DeadLettersRetried,
    Delivery,
    DeliveryDetail,
    DeliveryStatus,
    Page,
    Retried,
    from_row,
)

log = logging.getLogger(__name__)

DELIVERIES_CURSOR = ID_CURSOR
DEAD_LETTER_CURSOR = TIME_ID_CURSOR
RETRY_BATCH = 1000  # dead letters one statement of a bulk retry re-queues at most


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which deliveries: in one status, of one endpoint, of one exact event type."""

    status: DeliveryStatus | None = None
    endpoint_id: UUID | None = None
    event_type: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters: reviewed or not, of one endpoint, of one exact event type,
    dead in [since, until) (their updated_at). None: no condition."""

    resolved: bool | None = None
    endpoint_id: UUID | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def args(self) -> tuple[Any, ...]:
        """$2 to $6 of queries_delivery.DEAD_LETTER_MATCH."""
        return self.resolved, self.endpoint_id, self.event_type, self.since, self.until


def _not_found(row: Any) -> Any:
    if row is None:
        raise NotFound("Delivery not found")
    return row


async def list_deliveries(db: Db, org_id: UUID, selected: DeliveryFilter = DeliveryFilter(),
                          *, limit: int = 50, cursor: str | None = None) -> Page[Delivery]:
    """The organization's deliveries, newest first, `limit` per page from `cursor` (a
    previous page's next_cursor)."""
    position = int_cursor(cursor, DELIVERIES_CURSOR)
    rows = await db.fetch(q.LIST_DELIVERIES, org_id, selected.status, selected.endpoint_id,
                          selected.event_type, None if position is None else position[0],
                          limit + 1)
    page, next_cursor = page_of(rows, limit, lambda row: int_position(row["id"]))
    return Page(tuple(from_row(Delivery, r) for r in page), next_cursor)


async def get_delivery(db: Db, org_id: Scope, delivery_id: int) -> DeliveryDetail:
    """A delivery with every attempt, in order."""
    async with connection(db) as conn:
        row = _not_found(await conn.fetchrow(q.DELIVERY_BY_ID, delivery_id, org_id))
        attempts = await conn.fetch(q.ATTEMPTS, delivery_id)
    return DeliveryDetail(from_row(Delivery, row), tuple(from_row(Attempt, a) for a in attempts))


async def retry_delivery(db: Db, org_id: Scope, delivery_id: int) -> Retried:
    """Re-queues a failed or dead delivery (due now; a dead one with a fresh set of
    attempts), or Conflict when it is neither or its endpoint is disabled."""
    row = _not_found(await db.fetchrow(q.RETRY_DELIVERY, delivery_id, org_id))
    if row["status"] not in ("failed", "dead_letter"):
        raise Conflict(f"Delivery is {row['status']}: only failed or dead_letter "
                       "deliveries can be retried", delivery_status=row["status"])
    if not row["retried"]:
        raise Conflict("The delivery's endpoint is disabled: enable it first")
    return Retried(delivery_id, "pending")


async def list_dead_letters(db: Db, org_id: UUID, selected: DeadLetterFilter = DeadLetterFilter(),
                            *, limit: int = 50, cursor: str | None = None) -> Page[Delivery]:
    """The dead letters `selected` matches, most recently dead first."""
    position = int_cursor(cursor, DEAD_LETTER_CURSOR)
    after, after_id = (None, None) if position is None else (from_micros(position[0]),
                                                              position[1])
    rows = await db.fetch(q.DEAD_LETTERS, org_id, *selected.args(), after, after_id,
                          limit + 1)
    page, next_cursor = page_of(
        rows, limit, lambda row: int_position(micros(row["updated_at"]), row["id"]))
    return Page(tuple(from_row(Delivery, r) for r in page), next_cursor)


async def resolve_dead_letter(db: Db, org_id: Scope, delivery_id: int, *, by: str,
                              note: str | None = None) -> Delivery:
    """Marks a dead letter reviewed by `by` (a key id or an operator's name) without
    sending it again; Conflict when it is not a dead letter or is already resolved."""
    row = _not_found(await db.fetchrow(q.RESOLVE_DEAD_LETTER, delivery_id, org_id, by, note))
    if row["was_status"] != "dead_letter":
        raise Conflict(f"Delivery is {row['was_status']}: only dead_letter deliveries "
                       "can be resolved", delivery_status=row["was_status"])
    if row["id"] is None:
        raise Conflict("Delivery is already resolved", delivery_status="dead_letter",
                       resolved_at=row["was_resolved_at"], resolved_by=row["was_resolved_by"])
    return from_row(Delivery, row)


async def retry_dead_letters(db: Db, org_id: UUID,
                             selected: DeadLetterFilter = DeadLetterFilter()
                             ) -> DeadLettersRetried:
    """Re-queues the organization's dead letters that `selected` matches, newest first,
    RETRY_BATCH per statement, so no statement runs long or locks many rows. Returns how
    many were re-queued and how many skipped (their endpoint disabled or deleted)."""
    started = time.monotonic()
    requeued = skipped = batches = 0
    at: datetime | None = None
    after = 0
    while True:
        row = await db.fetchrow(q.RETRY_DEAD_LETTERS, org_id, *selected.args(), at, after,
                                RETRY_BATCH)
        batches += 1
        requeued += row["requeued"]
        skipped += row["skipped"]
        if row["scanned"] < RETRY_BATCH:
            break
        at, after = row["at"], row["id"]
    log.info("dead letters re-queued: org %s, %d re-queued, %d skipped, %d batches, "
             "took_ms %.1f", org_id, requeued, skipped, batches,
             (time.monotonic() - started) * 1000)
    return DeadLettersRetried(requeued, skipped)


async def latest_delivery_id(db: Db) -> int:
    """The newest delivery's id (0 without one): where following deliveries starts."""
    return int(await db.fetchval(q.LATEST_DELIVERY_ID))


async def deliveries_after(db: Db, org_id: Scope, after: int, *,
                           endpoint_id: UUID | None = None,
                           limit: int = 500) -> tuple[Delivery, ...]:
    """The deliveries made after id `after`, oldest first, at most `limit`: each poll of
    a follower (the command line's tail) reads only the new rows."""
    rows = await db.fetch(q.DELIVERIES_AFTER, after, org_id, endpoint_id, limit)
    return tuple(from_row(Delivery, r) for r in rows)


async def deliveries_by_ids(db: Db, org_id: Scope, ids: Sequence[int]) -> tuple[Delivery, ...]:
    """These deliveries as they are now (unknown or another organization's left out)."""
    rows = await db.fetch(q.DELIVERIES_BY_IDS, list(ids), org_id)
    return tuple(from_row(Delivery, r) for r in rows)
