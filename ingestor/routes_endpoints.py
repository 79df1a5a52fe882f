"""POST /api/webhook/config and /api/endpoints: create, list, read, change, delete,
rotate-secret, enable, recover and test-filter the organization's webhook endpoints.

A signing secret is shown only in the answer that creates or rotates it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from aiohttp import web

from ingestor import patterns
from ingestor import queries_endpoints as q
from ingestor.endpoint_input import (
    guard_url,
    parse_endpoint,
    parse_url,
    parse_window,
)
from ingestor.filters import Filter, explain, parse_filter, subject
from ingestor.http import ApiError, json_response, read_json
from ingestor.ids import new_webhook_secret, parse_uuid, uuid7
from ingestor.routes_events import INGEST
from ingestor.validation import EventIn, decode_json, parse_event

routes = web.RouteTableDef()

MAX_BODY = 64 * 1024
RECOVER_BATCH = 5_000
CANCEL_BATCH = 5_000  # deliveries a delete cancels at once; the Rescuer ends the rest
PRIORITY_BATCH = 5_000  # open deliveries given a new priority per statement
_PATCH_ORDER = ("url", "event_types", "description", "rate_limit_per_second", "ordered")


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loaded(text: str | None) -> Any:
    """A JSON column as sent back: its numbers exact (validation.decode_json)."""
    return None if text is None else decode_json(text.encode())


def rule_values(fields: dict[str, Any]) -> list[Any]:
    """The query parameters of the routing rules and delivery settings, in the order of
    INSERT_ENDPOINT's and UPDATE_ENDPOINT's $9..$14 (absent fields: None)."""
    flt: Filter | None = fields.get("filter")
    return [None if flt is None else _json_text(flt.document),
            None if flt is None else flt.path, fields.get("priority"),
            fields.get("timeout_s"), _json_text(fields.get("headers")),
            fields.get("success_statuses")]


def decode_endpoint(raw: bytes) -> Any:
    """An endpoint's body: its filter with every number exact (validation.decode_json,
    so a filter compares 2**64 or 0.10000000000000000001 as written), the other fields as
    plain JSON values."""
    body = orjson.loads(raw)
    if isinstance(body, dict) and isinstance(body.get("filter"), dict):
        body["filter"] = decode_json(raw)["filter"]
    return body


def endpoint_json(row: Any, secret: bool = False) -> dict[str, Any]:
    body = {"id": str(row["id"]), "url": row["url"], "event_types": row["event_types"],
            "description": row["description"],
            "rate_limit_per_second": row["rate_limit_per_second"], "ordered": row["ordered"],
            "filter": _loaded(row["filter"]), "priority": row["priority"],
            "timeout_s": row["timeout_s"], "headers": _loaded(row["headers"]),
            "success_statuses": row["success_statuses"],
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
    fields = parse_endpoint(await read_json(request, MAX_BODY, decode_endpoint), partial=False,
                            max_timeout=ingest.max_request_timeout)
    await guard_url(fields["url"], ingest.allow_private_targets)
    row = await ingest.pool().fetchrow(
        q.INSERT_ENDPOINT, uuid7(), org.id, fields["url"], fields["event_types"],
        fields["description"], fields["rate_limit_per_second"], fields["ordered"],
        new_webhook_secret(), *rule_values(fields))
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
    fields = parse_endpoint(await read_json(request, MAX_BODY, decode_endpoint), partial=True,
                            max_timeout=ingest.max_request_timeout)
    if "url" in fields:
        await guard_url(fields["url"], ingest.allow_private_targets)
    values = [fields.get(name) for name in _PATCH_ORDER]
    row = _found(await ingest.pool().fetchrow(q.UPDATE_ENDPOINT, target, org.id,
                                              list(fields), *values, *rule_values(fields)))
    if "priority" in fields:
        await _reprioritize(ingest.pool(), target, org.id, fields["priority"])
    return json_response(endpoint_json(row), headers=limit.headers())


async def _reprioritize(pool: asyncpg.Pool, target: UUID, org_id: UUID, priority: int) -> None:
    """The endpoint's waiting deliveries take its new priority, in short batches (never
    one long statement over a deep backlog)."""
    while True:
        status = await pool.execute(q.REPRIORITIZE_BATCH, target, org_id, priority,
                                    PRIORITY_BATCH)
        if int(status.split()[-1]) < PRIORITY_BATCH:
            return


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


MAX_TEST_HEADERS = 50


def _test_event(body: Any) -> tuple[EventIn, dict[str, str]]:
    """The event of a test-filter request: its type, payload and (for a source's event)
    headers, validated like an ingested event's."""
    if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
        raise ApiError(400, "body must be a JSON object with event: {type, payload, headers?}")
    event = body["event"]
    unknown = sorted(set(event) - {"type", "payload", "headers"})
    if unknown:
        raise ApiError(400, f"event: unknown field(s): {', '.join(unknown)}; accepted: "
                            "type, payload, headers")
    parsed = parse_event({"type": event.get("type"), "payload": event.get("payload")})
    headers = event.get("headers") or {}
    if (not isinstance(headers, dict) or len(headers) > MAX_TEST_HEADERS
            or not all(isinstance(v, str) and patterns.matches(patterns.NO_NUL, v)
                       and patterns.matches(patterns.HEADER_NAME, k)
                       for k, v in headers.items())):
        raise ApiError(400, f"event.headers must be an object of at most {MAX_TEST_HEADERS} "
                            "header names and string values (no NUL)")
    return parsed, {name.lower(): value for name, value in headers.items()}


@routes.post("/api/endpoints/{endpoint_id}/test-filter")
async def test_filter(request: web.Request) -> web.Response:
    """Whether an event would be routed to the endpoint, and why not: its type against
    event_types, then its filter (or a `filter` given here, to try one before saving it),
    each decided by PostgreSQL exactly as the routing statement decides."""
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = endpoint_id(request)
    body = await read_json(request, MAX_BODY, decode=decode_json)
    event, headers = _test_event(body)
    trying = "filter" in body
    async with ingest.pool().acquire() as conn:
        row = _found(await conn.fetchrow(q.TYPE_MATCHES, target, event.type, org.id))
        flt = (parse_filter(body["filter"]) if trying
               else parse_filter(_loaded(row["filter"])))
        verdict = None if flt is None else await explain(
            conn, flt, orjson.dumps(subject(event.type, orjson.Fragment(event.payload),
                                            headers)).decode())
    type_matches = bool(row["type_matches"])
    answer: dict[str, Any] = {
        "matches": type_matches and (verdict is None or verdict["matches"]),
        "type_matches": type_matches, "event_types": row["event_types"],
        "filter": None if flt is None else flt.document, "filter_tested": trying,
        "filter_matches": None if verdict is None else verdict["matches"],
        "conditions": [] if verdict is None else verdict["conditions"],
        "reason": None}
    if not type_matches:
        answer["reason"] = f"type {event.type!r} is not among the endpoint's event_types"
    elif verdict is not None and not verdict["matches"]:
        answer["reason"] = verdict["reason"]
    return json_response(answer, headers=limit.headers())
