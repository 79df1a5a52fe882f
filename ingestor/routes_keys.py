"""POST /api/keys/generate, GET /api/keys, POST /api/keys/rotate: each handler parses,
calls its operation (ingestor.ops_orgs) and renders the record it returns."""

from __future__ import annotations

from aiohttp import web

from ingestor import ops_orgs, patterns
from ingestor.auth import TIER_LIMITS, check_admin, is_admin, presented_key
from ingestor.calls import Call, keyed
from ingestor.context import INGEST
from ingestor.errors import ApiError
from ingestor.http import json_response, read_json
from ingestor.records import RotatedKey
from ingestor.shapes import to_json

routes = web.RouteTableDef()

MAX_ORG_NAME = 200


@routes.post("/api/keys/generate")
async def generate(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    admin = is_admin(request, ingest.admin_token, ingest.loopback_only)
    if not (admin or ingest.open_signup):
        check_admin(request, ingest.admin_token, ingest.loopback_only)  # refuses, saying why
    body = await read_json(request, 64 * 1024)
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    name = body.get("organization_name")
    if (not isinstance(name, str) or not 1 <= len(name) <= MAX_ORG_NAME
            or not patterns.matches(patterns.NAME, name)):
        raise ApiError(400, f"organization_name is required: a string of 1 to {MAX_ORG_NAME} "
                            "characters, not blank, without NUL")
    tier = body.get("tier", "free")
    if not isinstance(tier, str) or tier not in TIER_LIMITS:
        raise ApiError(400, f"tier must be one of {', '.join(TIER_LIMITS)}")
    if tier != "free" and not admin:
        raise ApiError(403, "Choosing a tier needs the admin token (Authorization: Bearer "
                            "<TRIGGERD_ADMIN_TOKEN>); open signup creates free organizations")
    created = await ops_orgs.create_organization(ingest.pool(), name.strip(), tier,
                                                 ingest.keys.tier_limits)
    return json_response(to_json(created), 201)


@routes.get("/api/keys")
@keyed
async def describe(call: Call) -> web.Response:
    return call.reply(await ops_orgs.get_organization(call.db, call.org.id,
                                                      call.ingest.keys.tier_limits))


@routes.post("/api/keys/rotate")
@keyed
async def rotate(call: Call) -> web.Response:
    key = await call.ingest.keys.rotate(call.org, presented_key(call.request) or "")
    return call.reply(RotatedKey(key, call.org.id))
