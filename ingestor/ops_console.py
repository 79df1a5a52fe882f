"""Read operations for the console (its endpoints table, an endpoint's attempts, dead
letters with an error-text search, the live series, the audit trail, the organizations
an operator may pick) and the audit record its actions leave.

Plain async functions over `ops_db.Db` and a `Scope` (an organization, or None for an
operator across organizations), returning records_console records. Every read runs in
a read-only transaction under STATEMENT_TIMEOUT and reads capped index ranges (the
queries say which): at millions of rows it answers late or not at all (a 503), never
holding the queue up.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from ingestor import ops_metrics
from ingestor import queries_console as q
from ingestor import queries_node as qn
from ingestor.errors import Invalid, NotFound
from ingestor.ops_db import Db, Scope, connection
from ingestor.records_console import (
    AttemptRow,
    AuditEntry,
    DeadLetterPage,
    DeadLetterRow,
    EndpointRow,
    Live,
    Minute,
    OrgName,
    QueueSample,
)

STATEMENT_TIMEOUT_MS = 2000
ENDPOINTS_SHOWN = 500
DUE_CAP = 10_000
ATTEMPTS_READ = 200_000  # attempts one hour's statistics read at most
EVENTS_READ = 500_000
ATTEMPTS_SHOWN = 50
ORG_ATTEMPTS_READ = 20_000  # an organization's latest attempts an endpoint's are among
EXCERPT_CHARS = 300
AUDIT_SHOWN = 200
ORGS_SHOWN = 500


@asynccontextmanager
async def bounded(db: Db) -> AsyncIterator[Any]:
    """A connection in a read-only transaction whose statements stop at the timeout."""
    async with connection(db) as conn, conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        yield conn


def _state(row: Any) -> str:
    if not row["enabled"]:
        return "disabled"
    if row["paused_at"] is not None:
        return "paused"
    if row["breaker"] != "closed":
        return "breaker_" + str(row["breaker"])
    return "enabled"


async def list_endpoints(db: Db, scope: Scope) -> tuple[EndpointRow, ...]:
    """The newest ENDPOINTS_SHOWN endpoints with their last hour and due backlog."""
    async with bounded(db) as conn:
        rows = await conn.fetch(q.ENDPOINTS if scope is None else q.ORG_ENDPOINTS, scope,
                                ENDPOINTS_SHOWN, DUE_CAP, ATTEMPTS_READ)
    return tuple(EndpointRow(
        r["id"], r["org_id"], r["org_name"], r["url"], r["description"], _state(r),
        r["disabled_reason"], r["paused_by"], r["consecutive_failures"], r["attempts"],
        round(r["successes"] / r["attempts"], 4) if r["attempts"] else None,
        None if r["p99_ms"] is None else round(r["p99_ms"], 1), r["due"]) for r in rows)


async def endpoint_attempts(db: Db, scope: Scope, endpoint_id: UUID) -> tuple[AttemptRow, ...]:
    """The endpoint's latest attempts; NotFound when it is not in scope."""
    org = await endpoint_org(db, scope, endpoint_id)
    async with bounded(db) as conn:
        rows = await conn.fetch(q.ENDPOINT_ATTEMPTS, endpoint_id, org, ATTEMPTS_SHOWN,
                                EXCERPT_CHARS, ORG_ATTEMPTS_READ)
    return tuple(AttemptRow(r["delivery_id"], r["attempt"], r["event_type"],
                            r["response_status"], round(r["duration_ms"], 1), r["error"],
                            r["response_excerpt"], r["created_at"]) for r in rows)


def _before(raw: str | None) -> tuple[datetime | None, int | None]:
    if not raw:
        return None, None
    try:
        at, _, ident = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        return datetime.fromisoformat(at), int(ident)
    except ValueError:
        raise Invalid("Invalid page position (before)") from None


async def dead_letters(db: Db, scope: Scope, *, endpoint_id: UUID | None = None,
                       event_type: str | None = None, since: datetime | None = None,
                       until: datetime | None = None, error: str | None = None,
                       before: str | None = None, limit: int = 50) -> DeadLetterPage:
    """Dead letters, most recently dead first, `limit` a page from `before`."""
    at, ident = _before(before)
    async with bounded(db) as conn:
        rows = await conn.fetch(q.DEAD_LETTERS, scope, endpoint_id, event_type, since, until,
                                error, at, ident, limit + 1)
    items = tuple(DeadLetterRow(**dict(r)) for r in rows[:limit])
    next_before = None
    if len(rows) > limit:
        last = items[-1]
        next_before = base64.urlsafe_b64encode(
            f"{last.updated_at.isoformat()}|{last.id}".encode()).decode()
    return DeadLetterPage(items, next_before)


def _uuid7_floor(at: datetime) -> UUID:
    """The smallest UUIDv7 of the millisecond `at`: events with an id at or above it were
    accepted at or after `at`."""
    millis = int(at.timestamp() * 1000)
    return UUID(int=(millis << 80) | (0x7 << 76) | (0x2 << 62))


def _pair(values: list[float | None] | None) -> tuple[float | None, float | None]:
    if values is None:
        return None, None
    p50, p99 = (None if v is None else round(v, 1) for v in values)
    return p50, p99


def _minutes(since: datetime, ingest: list[Any], attempts: list[Any]) -> tuple[Minute, ...]:
    start = since.replace(second=0, microsecond=0)
    events = {r["minute"]: r["events"] for r in ingest}
    outcome = {r["minute"]: r for r in attempts}
    out = []
    for n in range(61):
        minute = start + timedelta(minutes=n)
        a = outcome.get(minute)
        if a is None:
            out.append(Minute(minute, events.get(minute, 0), 0, 0, 0, None, None, None, None))
            continue
        out.append(Minute(minute, events.get(minute, 0), a["delivered"], a["http_error"],
                          a["failed"], *_pair(a["duration"]), *_pair(a["latency"])))
    return tuple(out)


async def live(db: Db, scope: Scope) -> Live:
    """The last hour per minute (ingest, outcomes, percentiles, the queue's samples) and
    the queue now."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=1)
    async with bounded(db) as conn:
        ingest = await conn.fetch(q.INGEST_PER_MINUTE, _uuid7_floor(since), EVENTS_READ, scope)
        if scope is None:
            attempts = await conn.fetch(q.ATTEMPTS_PER_MINUTE, since, ATTEMPTS_READ)
            queue = await conn.fetchrow(qn.QUEUE_STATE)
            depth = queue["pending"] + queue["failed"]
            oldest = float(await conn.fetchval(q.OLDEST_DUE))
        else:
            attempts = await conn.fetch(q.ORG_ATTEMPTS_PER_MINUTE, since, ATTEMPTS_READ, scope)
            health = await ops_metrics.queue_health(conn, scope)
            depth, oldest = health.stats.queue_depth, health.stats.oldest_pending_age_s
        samples = await conn.fetch(q.QUEUE_SAMPLES, scope, since)
    minutes = _minutes(since, list(ingest), list(attempts))
    events = sum(m.events for m in minutes)
    scanned = sum(r["scanned"] for r in ingest)
    tried = sum(m.delivered + m.http_error + m.failed for m in minutes)
    return Live(now, minutes, events, sum(m.delivered for m in minutes),
                sum(m.http_error + m.failed for m in minutes), depth, round(oldest, 1),
                scanned >= EVENTS_READ or tried >= ATTEMPTS_READ,
                tuple(QueueSample(r["minute"], r["depth"], r["due"],
                                  round(r["oldest_due_age_s"], 1)) for r in samples))


async def audit(db: Db, scope: Scope, *, who: str, action: str, target: str | None,
                detail: str | None = None) -> None:
    """Records one console action."""
    await db.execute(q.AUDIT, scope, who, action, target, detail)


async def audit_trail(db: Db, scope: Scope) -> tuple[AuditEntry, ...]:
    async with bounded(db) as conn:
        rows = await conn.fetch(q.AUDIT_TRAIL, scope, AUDIT_SHOWN)
    return tuple(AuditEntry(**dict(r)) for r in rows)


async def endpoint_org(db: Db, scope: Scope, endpoint_id: UUID) -> UUID:
    """The endpoint's organization, or NotFound when it is not in scope."""
    org: UUID | None = await db.fetchval(q.ENDPOINT_ORG, endpoint_id, scope)
    if org is None:
        raise NotFound("Endpoint not found")
    return org


async def delivery_org(db: Db, scope: Scope, delivery_id: int) -> UUID:
    """The delivery's organization, or NotFound when it is not in scope."""
    org: UUID | None = await db.fetchval(q.DELIVERY_ORG, delivery_id, scope)
    if org is None:
        raise NotFound("Delivery not found")
    return org


async def organizations(db: Db) -> tuple[OrgName, ...]:
    """The organizations an operator may narrow the console to, by name."""
    async with bounded(db) as conn:
        rows = await conn.fetch(q.ORGANIZATIONS, ORGS_SHOWN)
    return tuple(OrgName(r["id"], r["name"]) for r in rows)
