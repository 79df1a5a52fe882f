"""GET /api/inbox, POST /api/ack/{event_id}, POST /api/ack (bulk)."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from ingestor import queries
from ingestor.http import (
    ApiError,
    CursorShape,
    decode_cursor,
    json_response,
    page_of,
    query_choice,
    query_int,
    query_text,
    read_json,
)
from ingestor.ids import parse_uuid
from ingestor.routes_events import INGEST, event_json, path_event_id

routes = web.RouteTableDef()

INBOX_STATUSES = ("pending", "delivered", "failed", "cancelled")
MAX_ACK = 1_000
# An event id: any 16 bytes are a position.
INBOX_CURSOR = CursorShape(16, r"^[A-Za-z0-9_-]{22}$")


@routes.get("/api/inbox")
async def inbox(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit_headers = await ingest.admit(request)
    limit = query_int(request, "limit", 50, 1, 1000)
    status = query_choice(request, "status", INBOX_STATUSES)
    type_ = query_text(request, "type")
    position = decode_cursor(request, INBOX_CURSOR)
    cursor = None if position is None else UUID(bytes=position)
    rows = await ingest.pool().fetch(queries.INBOX, org.id, status, type_, cursor, limit + 1)
    page, next_cursor = page_of(rows, limit, lambda row: row["id"].bytes)
    return json_response({"events": [event_json(r) for r in page], "next_cursor": next_cursor},
                         headers=limit_headers.headers())


@routes.post("/api/ack/{event_id}")
async def ack_one(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    event_id = path_event_id(request)
    rows = await ingest.pool().fetch(queries.ACK, [event_id], org.id)
    if not rows:
        raise ApiError(404, "Event not found")
    return json_response({"id": str(event_id), "acknowledged": True}, headers=limit.headers())


@routes.post("/api/ack")
async def ack_many(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    body = await read_json(request, 256 * 1024)
    raw_ids = body.get("event_ids") if isinstance(body, dict) else None
    if not isinstance(raw_ids, list) or not 1 <= len(raw_ids) <= MAX_ACK:
        raise ApiError(400, f"event_ids must be an array of 1 to {MAX_ACK} event ids")
    ids = [parse_uuid(raw) if isinstance(raw, str) else None for raw in raw_ids]
    bad = [i for i, parsed in enumerate(ids) if parsed is None]
    if bad:
        raise ApiError(400, f"event_ids[{bad[0]}] is not a UUID", index=bad[0])
    rows = await ingest.pool().fetch(queries.ACK, ids, org.id)
    found = {r["id"] for r in rows}
    missing = [str(i) for i in dict.fromkeys(ids) if i not in found]
    return json_response({"acknowledged": len(found), "not_found": missing},
                         headers=limit.headers())
