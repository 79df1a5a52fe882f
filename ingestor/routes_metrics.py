"""GET /api/webhook-metrics/queue-health, delivery-stats, recent-failures and
dead-letter-queue (filtered), POST /api/webhook-metrics/retry-failed/{delivery_id} and
POST /api/webhook-metrics/dead-letter-queue/retry (every dead letter a filter selects):
the organization's own delivery queue, outcomes and dead letters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from ingestor import dead_letters
from ingestor import queries_delivery as q
from ingestor.http import (
    CursorShape,
    json_response,
    page_of,
    query_choice,
    query_int,
    read_json,
)
from ingestor.routes_deliveries import (
    delivery_id,
    delivery_json,
    from_micros,
    int_position,
    micros,
    read_int_cursor,
    retry,
)
from ingestor.routes_events import INGEST

routes = web.RouteTableDef()

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
MAX_EVENT_TYPES = 100
UNHEALTHY_FAILURE_RATE = 0.5
UNHEALTHY_AGE_S = 300.0
QUEUE_HEALTH_CAP = 100_000  # rows each part of the queue-health query reads at most
# (microseconds since 1970, delivery id); the first byte of the time is zero, so every
# position's time falls between 1970 and 4253.
DEAD_LETTER_CURSOR = CursorShape(16, r"^A[A-P][A-Za-z0-9_-]{20}$")


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


@routes.get("/api/webhook-metrics/queue-health")
async def queue_health(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    row = await ingest.pool().fetchrow(q.QUEUE_HEALTH, org.id, QUEUE_HEALTH_CAP)
    failure_rate = _rate(row["failures"], row["attempts"])
    oldest = round(row["oldest_age_s"], 3)
    return json_response({
        "healthy": failure_rate < UNHEALTHY_FAILURE_RATE and oldest < UNHEALTHY_AGE_S,
        "metrics": {name: row[name] for name in
                    ("waiting", "active", "completed", "failed", "delayed", "dead_letter")},
        "stats": {"queue_depth": row["depth"], "oldest_pending_age_s": oldest,
                  "failure_rate": failure_rate},
        "timestamp": row["at"]}, headers=limit.headers())


def _latency(percentiles: list[float] | None) -> dict[str, float | None]:
    """p50/p95/p99 in ms, or nulls when no attempt succeeded in the range."""
    names = ("p50", "p95", "p99")
    if percentiles is None:
        return dict.fromkeys(names)
    return {name: round(v, 3) for name, v in zip(names, percentiles, strict=True)}


@routes.get("/api/webhook-metrics/delivery-stats")
async def delivery_stats(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    range_ = query_choice(request, "range", tuple(RANGES)) or "24h"
    async with ingest.pool().acquire() as conn:
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
    return json_response({"range": range_, "summary": summary, "by_event_type": by_type},
                         headers=limit.headers())


@routes.get("/api/webhook-metrics/recent-failures")
async def recent_failures(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit_headers = await ingest.admit(request)
    limit = query_int(request, "limit", 20, 1, 100)
    rows = await ingest.pool().fetch(q.RECENT_FAILURES, org.id, limit)
    failures = [{"delivery_id": r["delivery_id"], "event_id": str(r["event_id"]),
                 "event_type": r["event_type"], "endpoint_id": str(r["endpoint_id"]),
                 "endpoint_url": r["url"], "attempt": r["attempt"],
                 "response_status": r["response_status"], "error": r["error"],
                 "created_at": r["created_at"]} for r in rows]
    return json_response({"failures": failures}, headers=limit_headers.headers())


@routes.get("/api/webhook-metrics/dead-letter-queue")
async def dead_letter_queue(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit_headers = await ingest.admit(request)
    limit = query_int(request, "limit", 50, 1, 1000)
    selected = dead_letters.filter_from_query(request)
    position = read_int_cursor(request, DEAD_LETTER_CURSOR)
    after, after_id = None, None
    if position is not None:
        at_us, after_id = position
        after = from_micros(at_us)
    rows = await ingest.pool().fetch(q.DEAD_LETTERS, org.id, *selected.args(), after,
                                     after_id, limit + 1)
    page, next_cursor = page_of(
        rows, limit, lambda row: int_position(micros(row["updated_at"]), row["id"]))
    return json_response({"deliveries": [delivery_json(r) for r in page],
                          "next_cursor": next_cursor}, headers=limit_headers.headers())


@routes.post("/api/webhook-metrics/retry-failed/{delivery_id}")
async def retry_failed(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    body = await retry(ingest, org, delivery_id(request))
    return json_response(body, 202, limit.headers())


@routes.post("/api/webhook-metrics/dead-letter-queue/retry")
async def retry_dead_letters(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    selected = dead_letters.filter_from_body(await read_json(request, dead_letters.MAX_BODY))
    requeued, skipped = await dead_letters.retry_matching(ingest.pool, org.id, selected)
    return json_response({"requeued": requeued, "skipped": skipped}, 202, limit.headers())
