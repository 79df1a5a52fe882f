"""POST /api/events, POST /api/events/batch (through the group-commit writer,
`Ingest.submit`), GET /api/events/{id} (ingestor.ops_events)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from ingestor import ops_events
from ingestor.calls import Call, keyed
from ingestor.context import INGEST as INGEST
from ingestor.errors import ApiError
from ingestor.http import json_response, read_json
from ingestor.ids import parse_uuid
from ingestor.validation import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BODY,
    decode_json,
    parse_batch,
    parse_event,
)

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
@keyed
async def get_event(call: Call) -> web.Response:
    return call.reply(await ops_events.get_event(call.db, call.org.id,
                                                 path_event_id(call.request)))


def path_event_id(request: web.Request) -> UUID:
    """The `{event_id}` of the path, or 400."""
    event_id = parse_uuid(request.match_info["event_id"])
    if event_id is None:
        raise ApiError(400, "event id must be a UUID")
    return event_id
