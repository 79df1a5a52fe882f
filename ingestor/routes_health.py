"""GET /health/live and GET /health/ready."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ingestor.http import json_response
from ingestor.routes_events import INGEST
from triggerd_sql.faults import is_transient

routes = web.RouteTableDef()
READY_TIMEOUT_S = 1.0


@routes.get("/health/live")
async def live(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    checks = {"database": "ok", "tree": "ok" if ingest.healthy() else "degraded"}
    try:
        await asyncio.wait_for(ingest.pool().fetchval("SELECT 1"), READY_TIMEOUT_S)
    except Exception as exc:  # any failure means not ready; only its wording differs
        state = "unreachable" if is_transient(exc) else "error"
        checks["database"] = f"{state}: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return json_response({"status": "ready" if ok else "not ready", "checks": checks},
                         200 if ok else 503)
