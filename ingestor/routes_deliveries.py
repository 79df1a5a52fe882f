"""GET /api/deliveries, GET /api/deliveries/{id} (with its attempts),
POST /api/deliveries/{id}/retry and POST /api/deliveries/{id}/resolve (a dead letter
reviewed, not sent again); the delivery JSON, retry and cursors the metrics routes
share."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from ingestor import dead_letters
from ingestor import queries_delivery as q
from ingestor.auth import Org, key_id
from ingestor.context import Ingest
from ingestor.http import (
    ApiError,
    CursorShape,
    decode_cursor,
    json_response,
    page_of,
    query_choice,
    query_int,
    query_param,
    query_text,
    read_json,
)
from ingestor.ids import parse_uuid
from ingestor.routes_events import INGEST

routes = web.RouteTableDef()

STATUSES = ("pending", "in_flight", "failed", "delivered", "dead_letter", "cancelled")
_MAX_ID = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BAD_CURSOR = "cursor is not valid: pass back a next_cursor from a previous page"
# A delivery id: any 64-bit integer is a position.
DELIVERIES_CURSOR = CursorShape(8, r"^[A-Za-z0-9_-]{11}$")


def delivery_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "event_id": str(row["event_id"]),
            "endpoint_id": str(row["endpoint_id"]), "event_type": row["event_type"],
            "status": row["status"], "attempts": row["attempts"],
            "response_status": row["response_status"], "last_error": row["last_error"],
            "next_attempt_at": row["next_attempt_at"], "delivered_at": row["delivered_at"],
            "created_at": row["created_at"], "updated_at": row["updated_at"],
            "resolved_at": row["resolved_at"], "resolved_by": row["resolved_by"],
            "resolution_note": row["resolution_note"]}


def int_position(*values: int) -> bytes:
    """A page position of big-endian 64-bit integers."""
    return struct.pack(f">{len(values)}q", *values)


def read_int_cursor(request: web.Request, shape: CursorShape) -> tuple[int, ...] | None:
    """The 64-bit integers of the request's cursor, None without one."""
    data = decode_cursor(request, shape)
    return None if data is None else struct.unpack(f">{shape.size // 8}q", data)


def micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=value)
    except OverflowError:
        raise ApiError(400, _BAD_CURSOR) from None


def delivery_id(request: web.Request) -> int:
    raw = request.match_info["delivery_id"]
    if (not raw.isascii() or not raw.isdigit() or len(raw) > 19
            or not 1 <= int(raw) <= _MAX_ID):
        raise ApiError(400, "delivery id must be a positive integer")
    return int(raw)


async def retry(ingest: Ingest, org: Org, target: int) -> dict[str, Any]:
    """Re-queues a failed or dead delivery, or refuses with 404 or 409."""
    row = await ingest.pool().fetchrow(q.RETRY_DELIVERY, target, org.id)
    if row is None:
        raise ApiError(404, "Delivery not found")
    if row["status"] not in ("failed", "dead_letter"):
        raise ApiError(409, f"Delivery is {row['status']}: only failed or dead_letter "
                            "deliveries can be retried", delivery_status=row["status"])
    if not row["retried"]:
        raise ApiError(409, "The delivery's endpoint is disabled: enable it first")
    return {"id": target, "status": "pending"}


@routes.get("/api/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit_headers = await ingest.admit(request)
    limit = query_int(request, "limit", 50, 1, 1000)
    status = query_choice(request, "status", STATUSES)
    raw_endpoint = query_param(request, "endpoint_id")
    endpoint = None if raw_endpoint is None else parse_uuid(raw_endpoint)
    if raw_endpoint is not None and endpoint is None:
        raise ApiError(400, "endpoint_id must be a UUID")
    event_type = query_text(request, "event_type")
    position = read_int_cursor(request, DELIVERIES_CURSOR)
    cursor = None if position is None else position[0]
    rows = await ingest.pool().fetch(q.LIST_DELIVERIES, org.id, status, endpoint, event_type,
                                     cursor, limit + 1)
    page, next_cursor = page_of(rows, limit, lambda row: int_position(row["id"]))
    return json_response({"deliveries": [delivery_json(r) for r in page],
                          "next_cursor": next_cursor}, headers=limit_headers.headers())


@routes.get("/api/deliveries/{delivery_id}")
async def get_delivery(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = delivery_id(request)
    row = await ingest.pool().fetchrow(q.DELIVERY_BY_ID, target, org.id)
    if row is None:
        raise ApiError(404, "Delivery not found")
    attempts = await ingest.pool().fetch(q.ATTEMPTS, target)
    body = delivery_json(row)
    body["attempts"] = [dict(a) for a in attempts]
    return json_response(body, headers=limit.headers())


@routes.post("/api/deliveries/{delivery_id}/retry")
async def retry_delivery(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    body = await retry(ingest, org, delivery_id(request))
    return json_response(body, 202, limit.headers())


@routes.post("/api/deliveries/{delivery_id}/resolve")
async def resolve_delivery(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = delivery_id(request)
    note = dead_letters.parse_note(await read_json(request, dead_letters.MAX_BODY))
    row = await dead_letters.resolve(ingest.pool(), org.id, target, key_id(request), note)
    return json_response(delivery_json(row), headers=limit.headers())
