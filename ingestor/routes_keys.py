"""POST /api/keys/generate, GET /api/keys, POST /api/keys/rotate."""

from __future__ import annotations

from aiohttp import web

from ingestor import patterns, queries
from ingestor.auth import TIER_LIMITS, check_admin, is_admin, presented_key
from ingestor.http import ApiError, json_response, read_json
from ingestor.routes_events import INGEST

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
    key, org, _ = await ingest.keys.create_org(name.strip(), tier)
    return json_response({"api_key": key, "organization_id": str(org.id),
                          "organization_name": org.name, "tier": org.tier,
                          "rate_limit_per_minute": org.rate_limit_per_minute}, 201)


@routes.get("/api/keys")
async def describe(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    row = await ingest.pool().fetchrow(queries.ORG_SUMMARY, org.id)
    if row is None:
        raise ApiError(404, "Organization not found")
    return json_response({"organization_id": str(org.id), "organization_name": row["name"],
                          "tier": row["tier"], "rate_limit_per_minute": org.rate_limit_per_minute,
                          "active_keys": row["active_keys"], "created_at": row["created_at"]},
                         headers=limit.headers())


@routes.post("/api/keys/rotate")
async def rotate(request: web.Request) -> web.Response:
    ingest = request.app[INGEST]
    org, limit = await ingest.admit(request)
    old = presented_key(request) or ""
    key = await ingest.keys.rotate(org, old)
    return json_response({"api_key": key, "organization_id": str(org.id),
                          "message": "Key rotated; the previous key is refused from now on"},
                         headers=limit.headers())
