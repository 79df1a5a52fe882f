"""GET /api/inbox, POST /api/ack/{event_id}, POST /api/ack (bulk): each handler parses,
calls its operation (ingestor.ops_events) and renders the record it returns."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingestor import ops_events as ops
from ingestor.calls import Call, keyed
from ingestor.errors import ApiError
from ingestor.http import query_choice, query_int, query_param, query_text, read_json
from ingestor.ids import parse_uuid
from ingestor.routes_events import path_event_id

routes = web.RouteTableDef()

ACK_BODY = 256 * 1024


@routes.get("/api/inbox")
@keyed
async def inbox(call: Call) -> web.Response:
    request = call.request
    limit = query_int(request, "limit", 50, 1, 1000)
    status: Any = query_choice(request, "status", ops.INBOX_STATUSES)
    page = await ops.inbox(call.db, call.org.id, status=status,
                           type_=query_text(request, "type"), limit=limit,
                           cursor=query_param(request, "cursor"))
    return call.reply({"events": page.items, "next_cursor": page.next_cursor})


@routes.post("/api/ack/{event_id}")
@keyed
async def ack_one(call: Call) -> web.Response:
    return call.reply(await ops.ack_event(call.db, call.org.id, path_event_id(call.request)))


@routes.post("/api/ack")
@keyed
async def ack_many(call: Call) -> web.Response:
    body = await read_json(call.request, ACK_BODY)
    raw_ids = body.get("event_ids") if isinstance(body, dict) else None
    if not isinstance(raw_ids, list) or not 1 <= len(raw_ids) <= ops.MAX_ACK:
        raise ApiError(400, f"event_ids must be an array of 1 to {ops.MAX_ACK} event ids")
    ids = [parse_uuid(raw) if isinstance(raw, str) else None for raw in raw_ids]
    bad = [i for i, parsed in enumerate(ids) if parsed is None]
    if bad:
        raise ApiError(400, f"event_ids[{bad[0]}] is not a UUID", index=bad[0])
    return call.reply(await ops.ack_events(call.db, call.org.id,
                                           [i for i in ids if i is not None]))
