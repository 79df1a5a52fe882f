"""What passes between a request and the EventWriter: the `Pending` event, the `Written`
outcome of its commit, and the failures its reply can carry instead.

Each failure says what the client is told, so that a plain 503 always means "not stored":

- `WriterUnavailable`: not stored (nothing reached PostgreSQL, PostgreSQL refused the
  statement with a transient error, or a check after a lost connection did not find
  the row); the client may retry.
- `OutcomeUnknown`: the statement may have reached PostgreSQL and nobody could tell in
  time whether it committed; the answer carries the event's id.
- `EventRejected`: PostgreSQL refused this event's data (400); retrying will not help.
- `WriteFailed`: a bug (a non-transient error that is not the event's data); 500.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import NamedTuple
from uuid import UUID

from cachetools import TTLCache

DedupKey = tuple[UUID, str]


class WriterUnavailable(Exception):
    """The event was not stored; the client should retry later."""


class OutcomeUnknown(Exception):
    """The event may or may not be stored; GET /api/events/{id} will tell."""


class EventRejected(Exception):
    """PostgreSQL refused this event's data; retrying it will not help."""


class WriteFailed(Exception):
    """The write failed for a reason that is a bug of ours, not the event's."""


class Written(NamedTuple):
    """A commit outcome: the stored id, and whether the event was a duplicate."""

    id: str
    duplicate: bool


@dataclass(slots=True, eq=False)
class Pending:
    """An accepted event waiting for its commit.

    `deadline` (event-loop time) is when its request stops waiting. `sent` is set by the
    writer at the moment the event goes into a statement: until then a request that
    gives up leaves the event unsent for good (the writer skips answered replies), so
    it is told "not stored"; from then on, "outcome unknown".
    """

    id: str  # a UUIDv7 in text form, as the client will see it
    org_id: UUID
    type: str
    payload: str
    dedup_id: str | None
    reply: asyncio.Future[Written] = field(repr=False)
    deadline: float
    sent: bool = False
    source_id: UUID | None = None
    provider_id: str | None = None
    headers: str | None = None  # a source's request headers that matter, as JSON text


def new_dedup_cache(size: int, ttl: float) -> TTLCache[DedupKey, str]:
    return TTLCache(maxsize=size, ttl=ttl)
