"""Operations on stored events: read one with its deliveries, page through the inbox
(unacknowledged events, newest first), acknowledge one or many.

Plain async functions over `ops_db.Db`, returning `records` or raising
`errors.NotFound` (unknown, or another organization's event) or `Invalid` (a bad
cursor). Accepting events is the group-commit writer's (`Ingest.submit`), not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from uuid import UUID

import orjson

from ingestor import queries, queries_delivery
from ingestor.cursors import UUID_CURSOR, decode_cursor_text, page_of
from ingestor.errors import NotFound
from ingestor.ops_db import Db, connection
from ingestor.records import Acked, AckedMany, Event, EventDelivery, EventDetail, Page, from_row

InboxStatus = Literal["pending", "delivered", "failed", "cancelled"]
INBOX_STATUSES = ("pending", "delivered", "failed", "cancelled")
INBOX_CURSOR = UUID_CURSOR
MAX_ACK = 1_000  # event ids one acknowledgement takes at most


async def get_event(db: Db, org_id: UUID, event_id: UUID) -> EventDetail:
    """An event, with one entry per endpoint it was routed to."""
    async with connection(db) as conn:
        row = await conn.fetchrow(queries.EVENT_BY_ID, event_id, org_id)
        if row is None:
            raise NotFound("Event not found")
        deliveries = await conn.fetch(queries_delivery.EVENT_DELIVERIES, event_id, org_id)
    return EventDetail(
        from_row(Event, row), acknowledged_at=row["acknowledged_at"],
        source_id=row["source_id"], provider_id=row["provider_id"],
        headers=None if row["headers"] is None else orjson.loads(row["headers"]),
        routing_note=row["routing_note"],
        deliveries=tuple(from_row(EventDelivery, d) for d in deliveries))


async def inbox(db: Db, org_id: UUID, *, status: InboxStatus | None = None,
                type_: str | None = None, limit: int = 50,
                cursor: str | None = None) -> Page[Event]:
    """Unacknowledged events, newest first, of one status and one exact type if given."""
    position = decode_cursor_text(cursor, INBOX_CURSOR)
    after = None if position is None else UUID(bytes=position)
    rows = await db.fetch(queries.INBOX, org_id, status, type_, after, limit + 1)
    page, next_cursor = page_of(rows, limit, lambda row: row["id"].bytes)
    return Page(tuple(from_row(Event, r) for r in page), next_cursor)


async def ack_event(db: Db, org_id: UUID, event_id: UUID) -> Acked:
    """Acknowledges an event (idempotent: a second ack keeps the first time)."""
    if not await db.fetch(queries.ACK, [event_id], org_id):
        raise NotFound("Event not found")
    return Acked(event_id)


async def ack_events(db: Db, org_id: UUID, event_ids: Sequence[UUID]) -> AckedMany:
    """Acknowledges the organization's events among `event_ids` (up to MAX_ACK); the
    others are listed as not found."""
    rows = await db.fetch(queries.ACK, list(event_ids), org_id)
    found = {r["id"] for r in rows}
    missing = tuple(i for i in dict.fromkeys(event_ids) if i not in found)
    return AckedMany(len(found), missing)
