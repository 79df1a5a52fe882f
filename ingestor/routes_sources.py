"""/api/sources: create, list, read, change, delete an organization's sources, rotate
their secret, and read their latest rejections.

A source's secret is shown only in the answer that creates or rotates it; a rotation
keeps the previous secret valid beside the new one until the next rotation, so a
provider that changes its secret on its own schedule loses nothing.
"""

from __future__ import annotations

import base64
import os
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from ingestor import queries_sources as q
from ingestor.errors import ApiError
from ingestor.http import json_response, read_json
from ingestor.ids import new_webhook_secret, parse_uuid, uuid7
from ingestor.routes_events import INGEST
from ingestor.routes_inbound import SOURCES, TOKEN_PREFIX
from ingestor.source_input import parse_patch, parse_rotation, parse_source
from ingestor.source_store import KEPT_REJECTIONS

routes = web.RouteTableDef()

MAX_BODY = 64 * 1024


def new_token() -> str:
    """An ingest token: 32 random bytes, URL-safe; it is the URL's only credential
    besides the signature, so it is never a guessable id."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def new_secret(kind: str, settings: dict[str, Any] | None) -> str:
    """A fresh secret usable by the kind: `whsec_` + base64 of 32 random bytes, or plain
    base64 for an hmac source that reads its key as base64."""
    secret = new_webhook_secret()
    if (settings or {}).get("key_encoding") == "base64":
        return secret.removeprefix("whsec_")
    return secret


def source_json(request: web.Request, row: Any, secret: str | None = None) -> dict[str, Any]:
    path = f"/in/{row['token']}"
    body = {"id": str(row["id"]), "name": row["name"], "kind": row["kind"],
            "settings": None if row["settings"] is None else orjson.Fragment(row["settings"]),
            "tolerance_s": row["tolerance_s"], "secret_count": row["secret_count"],
            "ingest_path": path, "ingest_url": f"{request.scheme}://{request.host}{path}",
            "created_at": row["created_at"], "updated_at": row["updated_at"]}
    if secret is not None:
        body["secret"] = secret
    return body


def source_id(request: web.Request) -> UUID:
    parsed = parse_uuid(request.match_info["source_id"])
    if parsed is None:
        raise ApiError(400, "source id must be a UUID")
    return parsed


def _found(row: Any) -> Any:
    if row is None:
        raise ApiError(404, "Source not found")
    return row


@routes.post("/api/sources")
async def create_source(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    fields = parse_source(await read_json(request, MAX_BODY))
    if fields["kind"] == "none" and not ingest.allow_unverified_sources:
        raise ApiError(403, "The none kind (no verification) is disabled on this node: the "
                            "operator enables it with TRIGGERD_ALLOW_UNVERIFIED_SOURCES=true",
                       headers=limit.headers())
    secret = fields["secret"] or new_secret(fields["kind"], fields["settings"])
    settings = None if fields["settings"] is None else orjson.dumps(fields["settings"]).decode()
    row = await ingest.pool().fetchrow(q.INSERT_SOURCE, uuid7(), org.id, fields["name"],
                                       fields["kind"], new_token(), secret, settings,
                                       fields["tolerance_s"])
    return json_response(source_json(request, row, secret), 201, limit.headers())


@routes.get("/api/sources")
async def list_sources(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    rows = await ingest.pool().fetch(q.LIST_SOURCES, org.id)
    return json_response({"sources": [source_json(request, r) for r in rows]},
                         headers=limit.headers())


@routes.get("/api/sources/{source_id}")
async def get_source(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    row = _found(await ingest.pool().fetchrow(q.SOURCE_BY_ID, source_id(request), org.id))
    return json_response(source_json(request, row), headers=limit.headers())


@routes.patch("/api/sources/{source_id}")
async def patch_source(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = source_id(request)
    fields = parse_patch(await read_json(request, MAX_BODY))
    row = _found(await ingest.pool().fetchrow(q.UPDATE_SOURCE, target, org.id, list(fields),
                                              fields.get("name"), fields.get("tolerance_s")))
    request.app[SOURCES].forget(row["token"])
    return json_response(source_json(request, row), headers=limit.headers())


@routes.delete("/api/sources/{source_id}")
async def delete_source(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = source_id(request)
    row = _found(await ingest.pool().fetchrow(q.DELETE_SOURCE, target, org.id))
    request.app[SOURCES].forget(row["token"])
    return json_response({"id": str(target), "deleted": True}, headers=limit.headers())


@routes.post("/api/sources/{source_id}/rotate-secret")
async def rotate_source_secret(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = source_id(request)
    body = await read_json(request, MAX_BODY)
    known = _found(await ingest.pool().fetchrow(q.SOURCE_KIND, target, org.id))
    settings = None if known["settings"] is None else orjson.loads(known["settings"])
    secret = parse_rotation(body, known["kind"], settings) or new_secret(known["kind"],
                                                                         settings)
    row = _found(await ingest.pool().fetchrow(q.ROTATE_SECRET, target, org.id, secret))
    request.app[SOURCES].forget(row["token"])
    return json_response(source_json(request, row, secret), headers=limit.headers())


@routes.get("/api/sources/{source_id}/rejections")
async def rejections(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    target = source_id(request)
    _found(await ingest.pool().fetchrow(q.SOURCE_BY_ID, target, org.id))
    rows = await ingest.pool().fetch(q.REJECTIONS, target, org.id, KEPT_REJECTIONS)
    return json_response({"rejections": [
        {"at": r["at"], "reason": r["reason"], "message": r["message"],
         "headers": orjson.Fragment(r["headers"])} for r in rows]}, headers=limit.headers())
