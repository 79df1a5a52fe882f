"""POST /api/webhook/config and /api/endpoints: create, list, read, change, delete,
rotate-secret, enable, pause, resume, recover and test-filter the organization's
webhook endpoints. Each handler parses, calls its operation (ingestor.ops_endpoints)
and renders the record it returns.

A signing secret is shown only in the answer that creates or rotates it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from ingestor import ops_endpoints as ops
from ingestor import patterns
from ingestor.calls import Call, keyed
from ingestor.endpoint_input import parse_endpoint, parse_url, parse_window
from ingestor.endpoint_spec import UNSET, changes_from, spec_from
from ingestor.errors import ApiError
from ingestor.http import read_json
from ingestor.ids import parse_uuid
from ingestor.records import NewEndpoint
from ingestor.validation import EventIn, decode_json, parse_event

routes = web.RouteTableDef()

MAX_BODY = 64 * 1024
MAX_TEST_HEADERS = 50


def decode_endpoint(raw: bytes) -> Any:
    """An endpoint's body: its filter with every number exact (validation.decode_json,
    so a filter compares 2**64 or 0.10000000000000000001 as written), the other fields as
    plain JSON values."""
    body = orjson.loads(raw)
    if isinstance(body, dict) and isinstance(body.get("filter"), dict):
        body["filter"] = decode_json(raw)["filter"]
    return body


def endpoint_id(request: web.Request) -> UUID:
    parsed = parse_uuid(request.match_info["endpoint_id"])
    if parsed is None:
        raise ApiError(400, "endpoint id must be a UUID")
    return parsed


@routes.post("/api/webhook/config")
@keyed
async def webhook_config(call: Call) -> web.Response:
    body = await read_json(call.request, MAX_BODY)
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object with webhook_url")
    url = parse_url(body.get("webhook_url"), "webhook_url")
    answer = await ops.set_default_endpoint(call.db, call.org.id, url,
                                            allow_private=call.ingest.allow_private_targets)
    return call.reply(answer, 201 if isinstance(answer, NewEndpoint) else 200)


@routes.post("/api/endpoints")
@keyed
async def create_endpoint(call: Call) -> web.Response:
    fields = parse_endpoint(await read_json(call.request, MAX_BODY, decode_endpoint),
                            partial=False, max_timeout=call.ingest.max_request_timeout)
    created = await ops.create_endpoint(call.db, call.org.id, spec_from(fields), by=call.by,
                                        allow_private=call.ingest.allow_private_targets)
    return call.reply(created, 201)


@routes.get("/api/endpoints")
@keyed
async def list_endpoints(call: Call) -> web.Response:
    return call.reply({"endpoints": await ops.list_endpoints(call.db, call.org.id)})


@routes.get("/api/endpoints/{endpoint_id}")
@keyed
async def get_endpoint(call: Call) -> web.Response:
    return call.reply(await ops.get_endpoint(call.db, call.org.id, endpoint_id(call.request)))


@routes.patch("/api/endpoints/{endpoint_id}")
@keyed
async def patch_endpoint(call: Call) -> web.Response:
    target = endpoint_id(call.request)
    fields = parse_endpoint(await read_json(call.request, MAX_BODY, decode_endpoint),
                            partial=True, max_timeout=call.ingest.max_request_timeout)
    return call.reply(await ops.update_endpoint(
        call.db, call.org.id, target, changes_from(fields), by=call.by,
        allow_private=call.ingest.allow_private_targets))


@routes.delete("/api/endpoints/{endpoint_id}")
@keyed
async def delete_endpoint(call: Call) -> web.Response:
    return call.reply(await ops.delete_endpoint(call.db, call.org.id,
                                                endpoint_id(call.request)))


@routes.post("/api/endpoints/{endpoint_id}/rotate-secret")
@keyed
async def rotate_secret(call: Call) -> web.Response:
    return call.reply(await ops.rotate_endpoint_secret(call.db, call.org.id,
                                                       endpoint_id(call.request)))


@routes.post("/api/endpoints/{endpoint_id}/enable")
@keyed
async def enable_endpoint(call: Call) -> web.Response:
    return call.reply(await ops.enable_endpoint(call.db, call.org.id,
                                                endpoint_id(call.request)))


@routes.post("/api/endpoints/{endpoint_id}/pause")
@keyed
async def pause_endpoint(call: Call) -> web.Response:
    return call.reply(await ops.pause_endpoint(call.db, call.org.id,
                                               endpoint_id(call.request), by=call.by))


@routes.post("/api/endpoints/{endpoint_id}/resume")
@keyed
async def resume_endpoint(call: Call) -> web.Response:
    return call.reply(await ops.resume_endpoint(call.db, call.org.id,
                                                endpoint_id(call.request)))


@routes.post("/api/endpoints/{endpoint_id}/recover")
@keyed
async def recover(call: Call) -> web.Response:
    target = endpoint_id(call.request)
    since, until = parse_window(await read_json(call.request, MAX_BODY))
    return call.reply(await ops.recover_endpoint(call.db, call.org.id, target, since, until),
                      202)


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
@keyed
async def test_filter(call: Call) -> web.Response:
    """Whether an event would be routed to the endpoint, and why not (ops.test_filter);
    a `filter` in the body is tried in place of the endpoint's own."""
    target = endpoint_id(call.request)
    body = await read_json(call.request, MAX_BODY, decode=decode_json)
    event, headers = _test_event(body)
    return call.reply(await ops.test_filter(call.db, call.org.id, target, event, headers,
                                            body["filter"] if "filter" in body else UNSET))
