"""GET /api/webhook-metrics/performance and GET /api/webhook-metrics/alerts: how the
organization's deliveries perform, per endpoint and per event type, and the alerts the
node raised about its endpoints.

The performance query reads one index range of the organization's recent attempts,
at most PERFORMANCE_CAP of them (the latest; `sampled` says when the cap was hit),
under a statement timeout: a query that runs longer answers 503, never holds a
connection for long.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from ingestor import queries_monitoring as q
from ingestor.calls import Call, keyed
from ingestor.cursors import ID_CURSOR, int_cursor, int_position, page_of
from ingestor.http import query_choice, query_int, query_param, unavailable
from ingestor.ops_metrics import RANGES

routes = web.RouteTableDef()

PERFORMANCE_CAP = 200_000  # attempts read at most, the latest of the range
MAX_GROUPS = 100  # endpoints, and event types, returned at most (largest first)
STATEMENT_TIMEOUT_MS = 2_000
PERCENTILES = ("p50", "p95", "p99")
ALERTS_CURSOR = ID_CURSOR
MAX_ALERTS_PAGE = 1000


def _percentiles(values: list[float] | None) -> dict[str, float | None]:
    """p50/p95/p99 in ms, or nulls when the group has none to rank."""
    if values is None:
        return dict.fromkeys(PERCENTILES)
    return {name: round(v, 3) for name, v in zip(PERCENTILES, values, strict=True)}


def _group(row: Any) -> dict[str, Any]:
    attempts, delivered = row["attempts"], row["delivered"]
    return {"attempts": attempts, "delivered": delivered,
            "success_rate": round(delivered / attempts, 4) if attempts else 0.0,
            "duration_ms": _percentiles(row["duration"]),
            "latency_ms": _percentiles(row["latency"])}


async def _performance_rows(pool: asyncpg.Pool, org_id: Any, range_: str) -> list[Any]:
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(q.STATEMENT_TIMEOUT, str(STATEMENT_TIMEOUT_MS))
        try:
            return list(await conn.fetch(q.PERFORMANCE, org_id, RANGES[range_],
                                         PERFORMANCE_CAP, MAX_GROUPS))
        except asyncpg.QueryCanceledError:
            raise unavailable(f"The performance query took longer than "
                              f"{STATEMENT_TIMEOUT_MS / 1000:g} s; retry, or ask for a "
                              "shorter range") from None


@routes.get("/api/webhook-metrics/performance")
@keyed
async def performance(call: Call) -> web.Response:
    range_ = query_choice(call.request, "range", tuple(RANGES)) or "24h"
    rows = await _performance_rows(call.db, call.org.id, range_)
    total = next(r for r in rows if r["dimension"] == "total")
    groups = sorted((r for r in rows if r["dimension"] != "total"),
                    key=lambda r: (-r["attempts"], r["key"]))
    by_endpoint = [{"endpoint_id": r["key"], "url": r["url"], **_group(r)}
                   for r in groups if r["dimension"] == "endpoint"]
    by_type = [{"event_type": r["key"], **_group(r)}
               for r in groups if r["dimension"] == "event_type"]
    return call.reply({"range": range_, "by_endpoint": by_endpoint,
                       "by_event_type": by_type, "sampled": total["attempts"] >= PERFORMANCE_CAP,
                       "timestamp": total["at"]})


@routes.get("/api/webhook-metrics/alerts")
@keyed
async def alerts(call: Call) -> web.Response:
    limit = query_int(call.request, "limit", 50, 1, MAX_ALERTS_PAGE)
    position = int_cursor(query_param(call.request, "cursor"), ALERTS_CURSOR)
    cursor = None if position is None else position[0]
    rows = await call.db.fetch(q.ALERTS, call.org.id, cursor, limit + 1)
    page, next_cursor = page_of(rows, limit, lambda row: int_position(row["id"]))
    body = [{"id": r["id"], "kind": r["kind"],
             "endpoint_id": None if r["endpoint_id"] is None else str(r["endpoint_id"]),
             "message": r["message"], "status": r["status"], "error": r["error"],
             "created_at": r["created_at"]} for r in page]
    return call.reply({"alerts": body, "next_cursor": next_cursor})
