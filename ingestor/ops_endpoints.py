"""Operations on endpoints: create (or set the default one), list, read, change,
delete, rotate the secret, enable, disable, pause, resume, recover and test a filter.

Plain async functions over `ops_db.Db`, returning `records` or raising `errors.NotFound`
(unknown, deleted, or another organization's endpoint), `Conflict` or `Invalid`. The
SSRF guard applies to every URL written unless `allow_private`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from ingestor import queries_endpoints as q
from ingestor.endpoint_input import guard_url
from ingestor.endpoint_spec import UNSET, EndpointChanges, EndpointSpec, Unset, rule_values
from ingestor.errors import Conflict, NotFound
from ingestor.filters import explain, parse_filter, subject
from ingestor.ids import new_webhook_secret, uuid7
from ingestor.ops_db import Db, Scope, affected, connection
from ingestor.records import (
    Endpoint,
    EndpointDeleted,
    FilterTest,
    NewEndpoint,
    Recovered,
    RotatedEndpoint,
    decoded,
)
from ingestor.validation import EventIn

RECOVER_BATCH = 5_000
DELETE_TRIES = 3  # a delete chosen as a deadlock's victim is done again, this many in all
CANCEL_BATCH = 5_000  # deliveries a delete cancels at once; the Rescuer ends the rest
PRIORITY_BATCH = 5_000  # open deliveries given a new priority per statement
# UPDATE_ENDPOINT's $4..$8, by field name.
_PATCH_ORDER = ("url", "event_types", "description", "rate_limit_per_second", "ordered")


def _found(row: Any) -> Any:
    if row is None:
        raise NotFound("Endpoint not found")
    return row


def _list(values: Any) -> Any:
    return None if values is None else list(values)


async def set_default_endpoint(db: Db, org_id: UUID, url: str, *,
                               allow_private: bool = False) -> Endpoint | NewEndpoint:
    """Creates the organization's default endpoint (every event type; a NewEndpoint,
    with its secret) or changes its url (the Endpoint)."""
    await guard_url(url, allow_private, "webhook_url")
    row = await db.fetchrow(q.UPSERT_DEFAULT_ENDPOINT, uuid7(), org_id, url,
                            new_webhook_secret())
    endpoint = Endpoint.from_row(row)
    return NewEndpoint(endpoint, row["secret"]) if row["created"] else endpoint


async def create_endpoint(db: Db, org_id: UUID, spec: EndpointSpec, *, by: str,
                          allow_private: bool = False) -> NewEndpoint:
    """A new endpoint and its signing secret; `by` is recorded if it starts paused."""
    await guard_url(spec.url, allow_private)
    row = await db.fetchrow(
        q.INSERT_ENDPOINT, uuid7(), org_id, spec.url, _list(spec.event_types),
        spec.description, spec.rate_limit_per_second, spec.ordered, new_webhook_secret(),
        *rule_values({"filter": spec.filter, "priority": spec.priority,
                      "timeout_s": spec.timeout_s, "headers": spec.headers,
                      "success_statuses": spec.success_statuses}),
        spec.paused, by)
    return NewEndpoint(Endpoint.from_row(row), row["secret"])


async def list_endpoints(db: Db, org_id: UUID) -> tuple[Endpoint, ...]:
    """The organization's endpoints, oldest first (deleted ones are gone)."""
    return tuple(Endpoint.from_row(r) for r in await db.fetch(q.LIST_ENDPOINTS, org_id))


async def get_endpoint(db: Db, org_id: Scope, endpoint_id: UUID) -> Endpoint:
    return Endpoint.from_row(_found(await db.fetchrow(q.ENDPOINT_BY_ID, endpoint_id, org_id)))


async def update_endpoint(db: Db, org_id: UUID, endpoint_id: UUID, changes: EndpointChanges,
                          *, by: str, allow_private: bool = False) -> Endpoint:
    """Changes the fields given (None clears one); a new priority reaches the endpoint's
    waiting deliveries too, and `paused` pauses (recording `by`) or resumes it."""
    given = changes.given()
    if "url" in given:
        await guard_url(given["url"], allow_private)
    values = [_list(given.get(name)) if name == "event_types" else given.get(name)
              for name in _PATCH_ORDER]
    row = _found(await db.fetchrow(q.UPDATE_ENDPOINT, endpoint_id, org_id, list(given),
                                  *values, *rule_values(given), given.get("paused"), by))
    if "priority" in given:
        await _reprioritize(db, endpoint_id, org_id, given["priority"])
    return Endpoint.from_row(row)


async def _reprioritize(db: Db, endpoint_id: UUID, org_id: UUID, priority: int) -> None:
    """The endpoint's waiting deliveries take its new priority, in short batches (never
    one long statement over a deep backlog)."""
    while True:
        status = await db.execute(q.REPRIORITIZE_BATCH, endpoint_id, org_id, priority,
                                  PRIORITY_BATCH)
        if affected(status) < PRIORITY_BATCH:
            return


async def delete_endpoint(db: Db, org_id: UUID, endpoint_id: UUID) -> EndpointDeleted:
    """Deletes an endpoint: its undelivered deliveries are cancelled, their events
    settle; the row stays, without secrets, so its deliveries still name it."""
    # It locks the endpoint, then its deliveries; an outcome being recorded locks a
    # delivery, then its endpoint. PostgreSQL ends one of the two: a delete ended so was
    # rolled back whole, and is simply done again.
    for _ in range(DELETE_TRIES - 1):
        with contextlib.suppress(asyncpg.DeadlockDetectedError):
            return await _delete_once(db, org_id, endpoint_id)
    return await _delete_once(db, org_id, endpoint_id)


async def _delete_once(db: Db, org_id: UUID, endpoint_id: UUID) -> EndpointDeleted:
    async with connection(db) as conn, conn.transaction():
        row = _found(await conn.fetchrow(q.DELETE_ENDPOINT, endpoint_id, org_id, CANCEL_BATCH))
        if row["events"]:
            await conn.execute(q.SETTLE_EVENTS, row["events"])
    return EndpointDeleted(endpoint_id)


async def rotate_endpoint_secret(db: Db, org_id: UUID, endpoint_id: UUID) -> RotatedEndpoint:
    """A new signing secret; the old one keeps signing beside it for 24 h."""
    row = _found(await db.fetchrow(q.ROTATE_SECRET, endpoint_id, org_id, new_webhook_secret()))
    return RotatedEndpoint(Endpoint.from_row(row), row["secret"], row["previous_secret_until"])


async def enable_endpoint(db: Db, org_id: Scope, endpoint_id: UUID) -> Endpoint:
    """Enables an endpoint and closes its breaker; a paused one stays paused."""
    return Endpoint.from_row(_found(await db.fetchrow(q.ENABLE_ENDPOINT, endpoint_id, org_id)))


async def disable_endpoint(db: Db, org_id: Scope, endpoint_id: UUID, reason: str) -> Endpoint:
    """Disables an endpoint: it receives nothing and its undelivered deliveries become
    dead letters (`endpoint disabled: <reason>`); `enable` and `recover` undo it."""
    return Endpoint.from_row(_found(await db.fetchrow(q.DISABLE_ENDPOINT, endpoint_id, org_id,
                                                     reason)))


async def pause_endpoint(db: Db, org_id: Scope, endpoint_id: UUID, *, by: str) -> Endpoint:
    """Pauses an endpoint (idempotent): its deliveries accumulate, none is attempted."""
    return Endpoint.from_row(_found(await db.fetchrow(q.PAUSE_ENDPOINT, endpoint_id, org_id,
                                                     by)))


async def resume_endpoint(db: Db, org_id: Scope, endpoint_id: UUID) -> Endpoint:
    """Resumes an endpoint (idempotent): its waiting deliveries go, in order."""
    return Endpoint.from_row(_found(await db.fetchrow(q.RESUME_ENDPOINT, endpoint_id, org_id)))


async def recover_endpoint(db: Db, org_id: UUID, endpoint_id: UUID, since: datetime,
                           until: datetime | None = None) -> Recovered:
    """Re-queues the endpoint's failed and dead deliveries created in [since, until)
    (until None: now), in batches; Conflict while the endpoint is disabled."""
    total = 0
    started: datetime | None = None
    # In batches, so a wide window is never one long transaction locking every row in it.
    while True:
        row = _found(await db.fetchrow(q.RECOVER_BATCH, endpoint_id, org_id, since, until,
                                      RECOVER_BATCH, started))
        if not row["enabled"] and started is None:
            raise Conflict("Endpoint is disabled: enable it first "
                           f"(POST /api/endpoints/{endpoint_id}/enable), then recover")
        total += row["requeued"]
        started = started or row["started"]
        if row["requeued"] < RECOVER_BATCH:
            return Recovered(total)


async def test_filter(db: Db, org_id: UUID, endpoint_id: UUID, event: EventIn,
                      headers: Mapping[str, str], trying: Any | Unset = UNSET) -> FilterTest:
    """Whether `event` (with a source's `headers`) would be routed to the endpoint, and
    why not: its type against event_types, then its filter, or `trying`, a filter
    document to try before saving it (None: no filter), each decided by PostgreSQL
    exactly as the routing statement decides."""
    async with connection(db) as conn:
        row = _found(await conn.fetchrow(q.TYPE_MATCHES, endpoint_id, event.type, org_id))
        flt = parse_filter(decoded(row["filter"]) if trying is UNSET else trying)
        verdict = None if flt is None else await explain(
            conn, flt, orjson.dumps(subject(event.type, orjson.Fragment(event.payload),
                                            headers)).decode())
    type_matches = bool(row["type_matches"])
    reason = None
    if not type_matches:
        reason = f"type {event.type!r} is not among the endpoint's event_types"
    elif verdict is not None and not verdict["matches"]:
        reason = verdict["reason"]
    return FilterTest(
        matches=type_matches and (verdict is None or verdict["matches"]),
        type_matches=type_matches, event_types=_tuple(row["event_types"]),
        filter=None if flt is None else flt.document, filter_tested=trying is not UNSET,
        filter_matches=None if verdict is None else verdict["matches"],
        conditions=() if verdict is None else tuple(verdict["conditions"]), reason=reason)


def _tuple(values: Any) -> Any:
    return None if values is None else tuple(values)
