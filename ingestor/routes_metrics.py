"""GET /api/webhook-metrics/queue-health, delivery-stats, recent-failures and
dead-letter-queue (filtered), POST /api/webhook-metrics/retry-failed/{delivery_id} and
POST /api/webhook-metrics/dead-letter-queue/retry (every dead letter a filter selects):
the organization's own delivery queue, outcomes and dead letters. Each handler parses,
calls its operation (ingestor.ops_metrics, ingestor.ops_deliveries) and renders the
record it returns."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingestor import dead_letters, ops_metrics
from ingestor import ops_deliveries as ops
from ingestor.calls import Call, keyed
from ingestor.http import query_choice, query_int, query_param, read_json
from ingestor.ops_metrics import RANGES
from ingestor.routes_deliveries import deliveries_page, delivery_id

routes = web.RouteTableDef()


@routes.get("/api/webhook-metrics/queue-health")
@keyed
async def queue_health(call: Call) -> web.Response:
    return call.reply(await ops_metrics.queue_health(call.db, call.org.id))


@routes.get("/api/webhook-metrics/delivery-stats")
@keyed
async def delivery_stats(call: Call) -> web.Response:
    range_: Any = query_choice(call.request, "range", tuple(RANGES)) or "24h"
    return call.reply(await ops_metrics.delivery_stats(call.db, call.org.id, range_))


@routes.get("/api/webhook-metrics/recent-failures")
@keyed
async def recent_failures(call: Call) -> web.Response:
    limit = query_int(call.request, "limit", 20, 1, 100)
    return call.reply({"failures": await ops_metrics.recent_failures(call.db, call.org.id,
                                                                     limit)})


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
