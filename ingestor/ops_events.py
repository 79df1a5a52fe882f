"""Operations on stored events: read one with its deliveries, page through the inbox
(unacknowledged events, newest first), acknowledge one or many, replay one.

Plain async functions over `ops_db.Db`, returning `records` or raising
`errors.NotFound` (unknown, or another organization's event), `Conflict` (a replay
with nothing to replay) or `Invalid` (a bad cursor). Accepting events is the
group-commit writer's (`Ingest.submit`), not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from uuid import UUID

import orjson

from ingestor import queries, queries_delivery
from ingestor.cursors import UUID_CURSOR, decode_cursor_text, page_of
from ingestor.errors import Conflict, NotFound
from ingestor.ops_db import Db, connection
from ingestor.records import (
    Acked,
    AckedMany,
    Event,
    EventDelivery,
    EventDetail,
    Page,
    Replayed,
    ReplayedDelivery,
    from_row,
)

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


async def replay_event(db: Db, org_id: UUID, event_id: UUID,
                       endpoint_id: UUID | None = None) -> Replayed:
    """Delivers an event again, to one endpoint or (None) to every endpoint it was
    routed to: each settled delivery (delivered or dead_letter) of an enabled endpoint
    is re-queued, the same row with a fresh set of attempts. NotFound for an unknown
    event or one not routed to `endpoint_id`; Conflict when nothing could be replayed
    (every delivery under way, or its endpoint disabled or deleted)."""
    rows = await db.fetch(queries_delivery.REPLAY_EVENT, event_id, org_id, endpoint_id)
    if not rows:
        raise NotFound("Event not found")
    if rows[0]["id"] is None:
        raise NotFound("The event has no delivery to that endpoint" if endpoint_id
                       else "The event has no deliveries")
    deliveries = tuple(ReplayedDelivery(r["id"], r["endpoint_id"], r["status"], r["replayed"])
                       for r in rows)
    replayed = sum(d.replayed for d in deliveries)
    if not replayed:
        why = ", ".join(sorted({r["status"] if r["open"] else "endpoint disabled or deleted"
                                for r in rows}))
        raise Conflict(f"Nothing to replay ({why}): only delivered or dead_letter "
                       "deliveries of an enabled endpoint are replayed",
                       delivery_status=rows[0]["status"])
    return Replayed(event_id, replayed, deliveries)
