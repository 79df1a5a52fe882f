"""POST /api/events, POST /api/events/batch, GET /api/events/{id}."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from ingestor import queries, queries_delivery
from ingestor.context import Ingest
from ingestor.http import ApiError, json_response, read_json
from ingestor.ids import parse_uuid
from ingestor.validation import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BODY,
    decode_json,
    parse_batch,
    parse_event,
)

INGEST = web.AppKey("ingest", Ingest)
routes = web.RouteTableDef()


@routes.post("/api/events")
async def post_event(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    event = parse_event(await read_json(request, MAX_EVENT_BODY, decode_json),
                        request.headers.get("Idempotency-Key"))
    written = await ingest.submit(org, event)
    if written.duplicate:
        return json_response({"error": "Duplicate event detected", "id": written.id,
                              "dedup_id": event.dedup_id}, 409, limit.headers())
    return json_response({"id": written.id, "status": "accepted",
                          "message": "Event accepted"}, 202, limit.headers())


@routes.post("/api/events/batch")
async def post_batch(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org = await ingest.keys.authenticate(request)
    events = parse_batch(await read_json(request, MAX_BATCH_BYTES, decode_json))
    if len(events) > org.rate_limit_per_minute:  # a 429 could never be waited out
        raise ApiError(413, f"A batch of {len(events)} events is more than the "
                            f"{org.tier} tier's limit of {org.rate_limit_per_minute} events "
                            "per minute: send smaller batches",
                       limit=org.rate_limit_per_minute)
    limit = ingest.charge(org, cost=len(events))
    outcomes = await ingest.submit_many(org, events)
    results: list[dict[str, Any]] = []
    for event, written in zip(events, outcomes, strict=True):
        item: dict[str, Any] = {"id": written.id,
                                "status": "duplicate" if written.duplicate else "accepted"}
        if event.dedup_id is not None:
            item["dedup_id"] = event.dedup_id
        results.append(item)
    duplicates = sum(1 for w in outcomes if w.duplicate)
    return json_response({"accepted": len(outcomes) - duplicates, "duplicates": duplicates,
                          "results": results}, 202, limit.headers())


# Not "batch": GET /api/events/batch is a 405 (Allow: POST), not an event id to refuse.
@routes.get(r"/api/events/{event_id:(?!batch$)[^/]+}")
async def get_event(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    event_id = path_event_id(request)
    row = await ingest.pool().fetchrow(queries.EVENT_BY_ID, event_id, org.id)
    if row is None:
        raise ApiError(404, "Event not found")
    event = event_json(row)
    event["acknowledged_at"] = row["acknowledged_at"]
    event["source_id"] = None if row["source_id"] is None else str(row["source_id"])
    event["provider_id"] = row["provider_id"]
    event["headers"] = None if row["headers"] is None else orjson.loads(row["headers"])
    event["routing_note"] = row["routing_note"]
    deliveries = await ingest.pool().fetch(queries_delivery.EVENT_DELIVERIES, event_id, org.id)
    event["deliveries"] = [{"endpoint_id": str(d["endpoint_id"]), "url": d["url"],
                            "status": d["status"], "attempts": d["attempts"],
                            "response_status": d["response_status"],
                            "last_error": d["last_error"],
                            "next_attempt_at": d["next_attempt_at"],
                            "delivered_at": d["delivered_at"]} for d in deliveries]
    return json_response(event, headers=limit.headers())


def path_event_id(request: web.Request) -> UUID:
    """The `{event_id}` of the path, or 400."""
    event_id = parse_uuid(request.match_info["event_id"])
    if event_id is None:
        raise ApiError(400, "event id must be a UUID")
    return event_id


def event_json(row: Any) -> dict[str, Any]:
    """An event row as the API shows it; the stored payload is passed through unparsed."""
    return {"id": str(row["id"]), "type": row["type"], "payload": orjson.Fragment(row["payload"]),
            "dedup_id": row["dedup_id"], "status": row["status"], "created_at": row["created_at"]}
