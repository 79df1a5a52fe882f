"""POST /in/{token}: a provider's webhook to one of an organization's sources.

Order matters: the token is looked up (404), the body read whole within the limit
(413; 408 when it trickles), the signature verified over those exact bytes (401 with
a short reason, recorded for the source), only then is the body parsed as JSON (400)
and committed through the group-commit writer like any event, charged to the
organization's rate limit (429).
The answer is 200 once the event is committed; a repeated provider id is answered 200
as a duplicate and stored once (its dedup key is "src:{source id}:{provider id}").
Slack's url_verification handshake is answered with its challenge, and not stored.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from aiohttp import web

from ingestor import patterns
from ingestor.auth import Org
from ingestor.errors import ApiError
from ingestor.http import json_response, read_body
from ingestor.routes_events import INGEST
from ingestor.source_kinds import Source, event_type, provider_id
from ingestor.source_schemes import Rejected, verify
from ingestor.source_store import SOURCE_ACCEPTED, SourceStore, kept_headers
from ingestor.validation import MAX_EVENT_BODY, decode_json, parse_event

SOURCES = web.AppKey("sources", SourceStore)
TOKEN_PREFIX = "src_"
TOKEN = r"^src_[A-Za-z0-9_-]{43}$"
routes = web.RouteTableDef()


def _verified(request: web.Request, source: Source, body: bytes) -> None:
    if source.scheme is None:
        if not request.app[INGEST].allow_unverified_sources:
            raise Rejected("unverified_disabled", "unverified sources are disabled on this "
                                                  "node (TRIGGERD_ALLOW_UNVERIFIED_SOURCES)")
        return
    verify(source.scheme, source.keys, request.headers, body, source.tolerance_s, time.time())


def _parsed(body: bytes) -> dict[str, Any]:
    try:
        parsed = decode_json(body)
    except ValueError as exc:
        raise Rejected("invalid_body", f"body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(parsed, dict):
        raise Rejected("invalid_body", "body must be a JSON object")
    return parsed


@routes.post("/in/{token}")
async def receive(request: web.Request) -> web.Response:
    ingest, store = request.app[INGEST], request.app[SOURCES]
    token = request.match_info["token"]
    source = await store.find(token) if patterns.matches(TOKEN, token) else None
    if source is None:
        raise ApiError(404, "Unknown source")
    body = await read_body(request, MAX_EVENT_BODY)
    try:
        _verified(request, source, body)
        parsed = _parsed(body)
    except Rejected as exc:
        store.reject(source, exc.reason, exc.message, request.headers)
        raise ApiError(400 if exc.reason == "invalid_body" else 401, exc.message) from None
    if source.kind == "slack" and parsed.get("type") == "url_verification":
        SOURCE_ACCEPTED.labels(source.kind, "handshake").inc()
        return json_response({"challenge": parsed.get("challenge")})
    org = Org(source.org_id, "", source.tier, ingest.keys.tier_limits[source.tier])
    limit = ingest.charge(org)
    found_id = provider_id(source.extract, request.headers, parsed)
    dedup = None if found_id is None else f"src:{source.id}:{found_id}"
    event = parse_event({"type": event_type(source.extract, request.headers, parsed),
                         "payload": parsed, "dedup_id": dedup})
    written = await ingest.submit(org, dataclasses.replace(
        event, source_id=source.id, provider_id=found_id,
        headers=kept_headers(source, request.headers)))
    outcome = "duplicate" if written.duplicate else "accepted"
    SOURCE_ACCEPTED.labels(source.kind, "duplicate" if written.duplicate else "committed").inc()
    return json_response({"id": written.id, "status": outcome}, 200, limit.headers())
