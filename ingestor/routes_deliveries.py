"""GET /api/deliveries, GET /api/deliveries/{id} (with its attempts),
POST /api/deliveries/{id}/retry and POST /api/deliveries/{id}/resolve (a dead letter
reviewed, not sent again). Each handler parses, calls its operation
(ingestor.ops_deliveries) and renders the record it returns."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingestor import dead_letters
from ingestor import ops_deliveries as ops
from ingestor.calls import Call, keyed
from ingestor.errors import ApiError
from ingestor.http import query_choice, query_int, query_param, query_text, read_json
from ingestor.ids import parse_uuid
from ingestor.records import DELIVERY_STATUSES, Page

routes = web.RouteTableDef()

_MAX_ID = 2**63 - 1


def delivery_id(request: web.Request) -> int:
    raw = request.match_info["delivery_id"]
    if (not raw.isascii() or not raw.isdigit() or len(raw) > 19
            or not 1 <= int(raw) <= _MAX_ID):
        raise ApiError(400, "delivery id must be a positive integer")
    return int(raw)


def deliveries_page(page: Page[Any]) -> dict[str, Any]:
    """A page of deliveries as the lists show it."""
    return {"deliveries": page.items, "next_cursor": page.next_cursor}


@routes.get("/api/deliveries")
@keyed
async def list_deliveries(call: Call) -> web.Response:
    request = call.request
    limit = query_int(request, "limit", 50, 1, 1000)
    status: Any = query_choice(request, "status", DELIVERY_STATUSES)
    raw_endpoint = query_param(request, "endpoint_id")
    endpoint = None if raw_endpoint is None else parse_uuid(raw_endpoint)
    if raw_endpoint is not None and endpoint is None:
        raise ApiError(400, "endpoint_id must be a UUID")
    selected = ops.DeliveryFilter(status, endpoint, query_text(request, "event_type"))
    page = await ops.list_deliveries(call.db, call.org.id, selected, limit=limit,
                                     cursor=query_param(request, "cursor"))
    return call.reply(deliveries_page(page))


@routes.get("/api/deliveries/{delivery_id}")
@keyed
async def get_delivery(call: Call) -> web.Response:
    return call.reply(await ops.get_delivery(call.db, call.org.id, delivery_id(call.request)))


@routes.post("/api/deliveries/{delivery_id}/retry")
@keyed
async def retry_delivery(call: Call) -> web.Response:
    return call.reply(await ops.retry_delivery(call.db, call.org.id,
                                               delivery_id(call.request)), 202)


@routes.post("/api/deliveries/{delivery_id}/resolve")
@keyed
async def resolve_delivery(call: Call) -> web.Response:
    target = delivery_id(call.request)
    note = dead_letters.parse_note(await read_json(call.request, dead_letters.MAX_BODY))
    return call.reply(await ops.resolve_dead_letter(call.db, call.org.id, target,
                                                    by=call.by, note=note))
