"""POST /api/webhook/config and /api/endpoints: create, list, read, change, delete,
rotate-secret, enable and recover the organization's webhook endpoints.

A signing secret is shown only in the answer that creates or rotates it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web

from ingestor import queries_endpoints as q
from ingestor.endpoint_input import guard_url, parse_endpoint, parse_url, parse_window
from ingestor.http import ApiError, json_response, read_json
from ingestor.ids import new_webhook_secret, parse_uuid, uuid7
from ingestor.routes_events import INGEST

routes = web.RouteTableDef()

MAX_BODY = 64 * 1024
RECOVER_BATCH = 5_000
CANCEL_BATCH = 5_000  # deliveries a delete cancels at once; the Rescuer ends the rest
_PATCH_ORDER = ("url", "event_types", "description", "rate_limit_per_second", "ordered")


def endpoint_json(row: Any, secret: bool = False) -> dict[str, Any]:
    body = {"id": str(row["id"]), "url": row["url"], "event_types": row["event_types"],
            "description": row["description"],
            "rate_limit_per_second": row["rate_limit_per_second"], "ordered": row["ordered"],
            "is_default": row["is_default"], "enabled": row["enabled"],
            "disabled_reason": row["disabled_reason"], "disabled_at": row["disabled_at"],
            "last_success_at": row["last_success_at"], "breaker": row["breaker"],
            "breaker_open_until": row["breaker_open_until"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}
    if secret:
        body["secret"] = row["secret"]
    return body


def endpoint_id(request: web.Request) -> UUID:
    parsed = parse_uuid(request.match_info["endpoint_id"])
    if parsed is None:
        raise ApiError(400, "endpoint id must be a UUID")
    return parsed


def _found(row: Any) -> Any:
    if row is None:
        raise ApiError(404, "Endpoint not found")
    return row


@routes.post("/api/webhook/config")
async def webhook_config(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    body = await read_json(request, MAX_BODY)
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object with webhook_url")
    url = parse_url(body.get("webhook_url"), "webhook_url")
    await guard_url(url, ingest.allow_private_targets, "webhook_url")
    row = await ingest.pool().fetchrow(q.UPSERT_DEFAULT_ENDPOINT, uuid7(), org.id, url,
                                       new_webhook_secret())
    created = bool(row["created"])
    return json_response(endpoint_json(row, secret=created), 201 if created else 200,
                         limit.headers())


@routes.post("/api/endpoints")
async def create_endpoint(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    fields = parse_endpoint(await read_json(request, MAX_BODY), partial=False)
    await guard_url(fields["url"], ingest.allow_private_targets)
    row = await ingest.pool().fetchrow(
        q.INSERT_ENDPOINT, uuid7(), org.id, fields["url"], fields["event_types"],
        fields["description"], fields["rate_limit_per_second"], fields["ordered"],
        new_webhook_secret())
    return json_response(endpoint_json(row, secret=True), 201, limit.headers())


@routes.get("/api/endpoints")
async def list_endpoints(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    rows = await ingest.pool().fetch(q.LIST_ENDPOINTS, org.id)
    return json_response({"endpoints": [endpoint_json(r) for r in rows]},
                         headers=limit.headers())


@routes.get("/api/endpoints/{endpoint_id}")
async def get_endpoint(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    row = _found(await ingest.pool().fetchrow(q.ENDPOINT_BY_ID, endpoint_id(request), org.id))
    return json_response(endpoint_json(row), headers=limit.headers())


@routes.patch("/api/endpoints/{endpoint_id}")
async def patch_endpoint(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = endpoint_id(request)
    fields = parse_endpoint(await read_json(request, MAX_BODY), partial=True)
    if "url" in fields:
        await guard_url(fields["url"], ingest.allow_private_targets)
    values = [fields.get(name) for name in _PATCH_ORDER]
    row = _found(await ingest.pool().fetchrow(q.UPDATE_ENDPOINT, target, org.id,
                                              list(fields), *values))
    return json_response(endpoint_json(row), headers=limit.headers())


@routes.delete("/api/endpoints/{endpoint_id}")
async def delete_endpoint(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = endpoint_id(request)
    async with ingest.pool().acquire() as conn, conn.transaction():
        row = _found(await conn.fetchrow(q.DELETE_ENDPOINT, target, org.id, CANCEL_BATCH))
        if row["events"]:
            await conn.execute(q.SETTLE_EVENTS, row["events"])
    return json_response({"id": str(target), "deleted": True}, headers=limit.headers())


@routes.post("/api/endpoints/{endpoint_id}/rotate-secret")
async def rotate_secret(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    row = _found(await ingest.pool().fetchrow(q.ROTATE_SECRET, endpoint_id(request), org.id,
                                              new_webhook_secret()))
    body = endpoint_json(row, secret=True)
    body["previous_secret_until"] = row["previous_secret_until"]
    return json_response(body, headers=limit.headers())


@routes.post("/api/endpoints/{endpoint_id}/enable")
async def enable_endpoint(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    row = _found(await ingest.pool().fetchrow(q.ENABLE_ENDPOINT, endpoint_id(request), org.id))
    return json_response(endpoint_json(row), headers=limit.headers())


@routes.post("/api/endpoints/{endpoint_id}/recover")
async def recover(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = endpoint_id(request)
    since, until = parse_window(await read_json(request, MAX_BODY))
    total = 0
    started: datetime | None = None
    # In batches, so a wide window is never one long transaction locking every row in it.
    while True:
        row = _found(await ingest.pool().fetchrow(q.RECOVER_BATCH, target, org.id, since,
                                                  until, RECOVER_BATCH, started))
        if not row["enabled"] and started is None:
            raise ApiError(409, "Endpoint is disabled: enable it first "
                                f"(POST /api/endpoints/{target}/enable), then recover")
        total += row["requeued"]
        started = started or row["started"]
        if row["requeued"] < RECOVER_BATCH:
            break
    return json_response({"requeued": total}, 202, limit.headers())
