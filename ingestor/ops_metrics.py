"""Read operations on an organization's delivery queue and outcomes: its queue health,
delivery statistics over a range, and its latest failed attempts.

Each reads bounded index ranges of the organization's own rows (ingestor/
queries_delivery.py says which), so a dashboard's question never slows the queue.
"""

from __future__ import annotations

from datetime import timedelta
from typing import get_args
from uuid import UUID

from ingestor import queries_delivery as q
from ingestor.ops_db import Db, connection
from ingestor.records_metrics import (
    DeliveryStats,
    Latency,
    QueueCounts,
    QueueHealth,
    QueueStats,
    Range,
    RecentFailure,
    StatsSummary,
    TypeStats,
)

RANGES: dict[str, timedelta] = dict(zip(
    get_args(Range), (timedelta(hours=1), timedelta(hours=24), timedelta(days=7)),
    strict=True))
MAX_EVENT_TYPES = 100
UNHEALTHY_FAILURE_RATE = 0.5
UNHEALTHY_AGE_S = 300.0
QUEUE_HEALTH_CAP = 100_000  # rows each part of the queue-health query reads at most


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


async def queue_health(db: Db, org_id: UUID) -> QueueHealth:
    """The organization's queue: counts by state, depth, the oldest waiting delivery's
    age and the last hour's failure rate; unhealthy when more than half the attempts of
    the last hour failed or a waiting delivery is older than 5 minutes."""
    row = await db.fetchrow(q.QUEUE_HEALTH, org_id, QUEUE_HEALTH_CAP)
    failure_rate = _rate(row["failures"], row["attempts"])
    oldest = round(row["oldest_age_s"], 3)
    return QueueHealth(
        healthy=failure_rate < UNHEALTHY_FAILURE_RATE and oldest < UNHEALTHY_AGE_S,
        metrics=QueueCounts(row["waiting"], row["active"], row["completed"], row["failed"],
                            row["delayed"], row["dead_letter"]),
        stats=QueueStats(row["depth"], oldest, failure_rate, row["paused"]),
        timestamp=row["at"])


def _latency(percentiles: list[float] | None) -> Latency:
    """p50/p95/p99 in ms, or nulls when no attempt succeeded in the range."""
    if percentiles is None:
        return Latency(None, None, None)
    p50, p95, p99 = (round(v, 3) for v in percentiles)
    return Latency(p50, p95, p99)


async def delivery_stats(db: Db, org_id: UUID, range_: Range = "24h") -> DeliveryStats:
    """Outcomes of the deliveries created in the range, in total and per event type
    (the MAX_EVENT_TYPES largest), read in one snapshot so the two add up."""
    async with connection(db) as conn, conn.transaction(isolation="repeatable_read",
                                                        readonly=True):
        row = await conn.fetchrow(q.DELIVERY_STATS, org_id, RANGES[range_])
        types = await conn.fetch(q.DELIVERY_STATS_BY_TYPE, org_id, RANGES[range_],
                                 MAX_EVENT_TYPES)
    summary = StatsSummary(row["total"], row["delivered"], row["failed"], row["dead_letter"],
                           row["pending"], _rate(row["delivered"], row["total"]),
                           round(row["avg_attempts"], 3), _latency(row["latency"]))
    by_type = tuple(TypeStats(t["event_type"], t["total"], t["delivered"], t["dead_letter"],
                              _rate(t["delivered"], t["total"])) for t in types)
    return DeliveryStats(range_, summary, by_type)


async def recent_failures(db: Db, org_id: UUID, limit: int = 20) -> tuple[RecentFailure, ...]:
    """The organization's latest failed attempts, newest first."""
    rows = await db.fetch(q.RECENT_FAILURES, org_id, limit)
    return tuple(RecentFailure(r["delivery_id"], r["event_id"], r["event_type"],
                               r["endpoint_id"], r["url"], r["attempt"], r["response_status"],
                               r["error"], r["created_at"]) for r in rows)
