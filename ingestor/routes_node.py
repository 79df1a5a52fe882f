"""GET /metrics (Prometheus text) and GET /dashboard (an HTML page for operators).

Both read the node-wide queues with one query (queries_node.QUEUE_STATE) under a 1 s
timeout, here in the handler (/metrics also the endpoint states, ENDPOINT_STATES, on
the same connection within the same second); the collectors stay synchronous and never wait on
PostgreSQL. When it does not answer, /metrics still answers 200 with
`triggerd_database_up 0` and the dashboard says so. Both are for operators
(auth.is_admin: the admin token, or any caller on a node without one that listens on
this machine only); /metrics may be opened to any scraper with TRIGGERD_METRICS_PUBLIC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from ingestor import queries_node as q
from ingestor.auth import check_admin
from ingestor.context import Ingest
from ingestor.dashboard import Page, render
from ingestor.metrics import DELIVERY_STATES, ENDPOINT_STATES, QueueState, Scrape, queue_families
from ingestor.routes_events import INGEST
from triggerd_sql.faults import is_transient

routes = web.RouteTableDef()

QUEUE_TIMEOUT_S = 1.0
ENDPOINTS_READ = 10_000  # held endpoints counted per scrape at most
DASHBOARD_TIMEOUT_S = 2.0  # the queue query and the two short lists, together
DEAD_LETTERS_SHOWN = 20
ENDPOINTS_SHOWN = 50
# The page shows clients' URLs and receivers' errors: no script may run, whatever slips.
_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                 "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _queue_state(row: Mapping[str, Any],
                 endpoints: Mapping[str, Any] | None = None) -> QueueState:
    return QueueState(deliveries={s: row[s] for s in DELIVERY_STATES}, due=row["due"],
                      unrouted=row["unrouted"], oldest_pending_age_s=row["oldest_age_s"],
                      endpoints={s: endpoints[s] for s in ENDPOINT_STATES} if endpoints else {})


async def _scrape_rows(ingest: Ingest) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    async with ingest.pool().acquire() as conn:
        return (await conn.fetchrow(q.QUEUE_STATE),
                await conn.fetchrow(q.ENDPOINT_STATES, ENDPOINTS_READ))


async def read_queue(ingest: Ingest) -> QueueState | None:
    """The queue and endpoint states, or None when PostgreSQL does not answer within 1 s."""
    try:
        row, endpoints = await asyncio.wait_for(_scrape_rows(ingest), QUEUE_TIMEOUT_S)
    except Exception as exc:
        if not is_transient(exc):
            raise
        return None
    return _queue_state(row, endpoints)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    if not ingest.metrics_public:
        check_admin(request, ingest.admin_token, ingest.loopback_only)
    scrape = Scrape(ingest.node_metrics(), queue_families(await read_queue(ingest)))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encoder(scrape), headers={"Content-Type": content_type})


async def _dashboard_rows(ingest: Ingest) -> tuple[QueueState, list[Mapping[str, Any]],
                                                   list[Mapping[str, Any]]]:
    async with ingest.pool().acquire() as conn:
        row = await conn.fetchrow(q.QUEUE_STATE)
        dead = await conn.fetch(q.RECENT_DEAD_LETTERS, DEAD_LETTERS_SHOWN)
        held = await conn.fetch(q.ENDPOINTS_HELD, ENDPOINTS_SHOWN)
    return _queue_state(row), [dict(r) for r in dead], [dict(r) for r in held]


async def status_page(request: web.Request) -> web.Response:
    """GET /dashboard for scripts (routes_console serves the route): the node's status."""
    ingest = request.app[INGEST]
    check_admin(request, ingest.admin_token, ingest.loopback_only)
    queue: QueueState | None = None
    dead: list[Mapping[str, Any]] | None = None
    held: list[Mapping[str, Any]] | None = None
    try:
        queue, dead, held = await asyncio.wait_for(_dashboard_rows(ingest), DASHBOARD_TIMEOUT_S)
    except Exception as exc:
        if not is_transient(exc):
            raise
        # the page says PostgreSQL did not answer
    values = Scrape(ingest.node_metrics(), queue_families(queue)).values()
    page = Page(node_name=ingest.node_name, now=datetime.now(UTC),
                tree=ingest.tree_status(), values=values, queue=queue,
                dead_letters=dead, endpoints=held)
    return web.Response(text=render(page), content_type="text/html", charset="utf-8",
                        headers=_PAGE_HEADERS)
