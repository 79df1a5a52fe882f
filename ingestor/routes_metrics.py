"""GET /api/webhook-metrics/queue-health, delivery-stats, recent-failures and
dead-letter-queue (filtered), POST /api/webhook-metrics/retry-failed/{delivery_id} and
POST /api/webhook-metrics/dead-letter-queue/retry (every dead letter a filter selects):
the organization's own delivery queue, outcomes and dead letters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from ingestor import dead_letters
from ingestor import ops_deliveries as ops
from ingestor import queries_delivery as q
from ingestor.calls import Call, keyed
from ingestor.http import query_choice, query_int, query_param, read_json
from ingestor.routes_deliveries import deliveries_page, delivery_id

routes = web.RouteTableDef()

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
MAX_EVENT_TYPES = 100
UNHEALTHY_FAILURE_RATE = 0.5
UNHEALTHY_AGE_S = 300.0
QUEUE_HEALTH_CAP = 100_000  # rows each part of the queue-health query reads at most


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


@routes.get("/api/webhook-metrics/queue-health")
@keyed
async def queue_health(call: Call) -> web.Response:
    row = await call.db.fetchrow(q.QUEUE_HEALTH, call.org.id, QUEUE_HEALTH_CAP)
    failure_rate = _rate(row["failures"], row["attempts"])
    oldest = round(row["oldest_age_s"], 3)
    return call.reply({
        "healthy": failure_rate < UNHEALTHY_FAILURE_RATE and oldest < UNHEALTHY_AGE_S,
        "metrics": {name: row[name] for name in
                    ("waiting", "active", "completed", "failed", "delayed", "dead_letter")},
        "stats": {"queue_depth": row["depth"], "oldest_pending_age_s": oldest,
                  "failure_rate": failure_rate, "paused": row["paused"]},
        "timestamp": row["at"]})


def _latency(percentiles: list[float] | None) -> dict[str, float | None]:
    """p50/p95/p99 in ms, or nulls when no attempt succeeded in the range."""
    names = ("p50", "p95", "p99")
    if percentiles is None:
        return dict.fromkeys(names)
    return {name: round(v, 3) for name, v in zip(names, percentiles, strict=True)}


@routes.get("/api/webhook-metrics/delivery-stats")
@keyed
async def delivery_stats(call: Call) -> web.Response:
    org = call.org
    range_ = query_choice(call.request, "range", tuple(RANGES)) or "24h"
    async with call.db.acquire() as conn:
        # One snapshot, so the summary and the per-type rows add up.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            row = await conn.fetchrow(q.DELIVERY_STATS, org.id, RANGES[range_])
            types = await conn.fetch(q.DELIVERY_STATS_BY_TYPE, org.id, RANGES[range_],
                                     MAX_EVENT_TYPES)
    summary: dict[str, Any] = {
        name: row[name] for name in ("total", "delivered", "failed", "dead_letter", "pending")}
    summary["success_rate"] = _rate(row["delivered"], row["total"])
    summary["avg_attempts"] = round(row["avg_attempts"], 3)
    summary["latency_ms"] = _latency(row["latency"])
    by_type = [{"event_type": t["event_type"], "total": t["total"],
                "delivered": t["delivered"], "dead_letter": t["dead_letter"],
                "success_rate": _rate(t["delivered"], t["total"])} for t in types]
    return call.reply({"range": range_, "summary": summary, "by_event_type": by_type})


@routes.get("/api/webhook-metrics/recent-failures")
@keyed
async def recent_failures(call: Call) -> web.Response:
    limit = query_int(call.request, "limit", 20, 1, 100)
    rows = await call.db.fetch(q.RECENT_FAILURES, call.org.id, limit)
    failures = [{"delivery_id": r["delivery_id"], "event_id": str(r["event_id"]),
                 "event_type": r["event_type"], "endpoint_id": str(r["endpoint_id"]),
                 "endpoint_url": r["url"], "attempt": r["attempt"],
                 "response_status": r["response_status"], "error": r["error"],
                 "created_at": r["created_at"]} for r in rows]
    return call.reply({"failures": failures})


@routes.get("/api/webhook-metrics/dead-letter-queue")
@keyed
async def dead_letter_queue(call: Call) -> web.Response:
    limit = query_int(call.request, "limit", 50, 1, 1000)
    selected = dead_letters.filter_from_query(call.request)
    page = await ops.list_dead_letters(call.db, call.org.id, selected, limit=limit,
                                       cursor=query_param(call.request, "cursor"))
    return call.reply(deliveries_page(page))


@routes.post("/api/webhook-metrics/retry-failed/{delivery_id}")
@keyed
async def retry_failed(call: Call) -> web.Response:
    return call.reply(await ops.retry_delivery(call.db, call.org.id,
                                               delivery_id(call.request)), 202)


@routes.post("/api/webhook-metrics/dead-letter-queue/retry")
@keyed
async def retry_dead_letters(call: Call) -> web.Response:
    body = await read_json(call.request, dead_letters.MAX_BODY)
    return call.reply(await ops.retry_dead_letters(call.db, call.org.id,
                                                   dead_letters.filter_from_body(body)), 202)
