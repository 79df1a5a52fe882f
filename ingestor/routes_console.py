"""The console at /dashboard: sign-in, its pages and their assets.

GET /dashboard is the live page for a console session; a script with the Bearer admin
token (or any caller on a node without one that listens on loopback only) still gets the
status page of routes_node; a browser without a session is sent to the sign-in page.
Sessions and CSRF: console_sessions; the JSON reads and the actions:
routes_console_api.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from uuid import UUID

from aiohttp import web

from ingestor import console_pages, console_sessions, ops_console, ops_endpoints
from ingestor.auth import well_formed
from ingestor.console_sessions import Session, same_origin
from ingestor.console_web import (
    LOGIN,
    operator_only,
    page,
    path_uuid,
    scope_of,
    session_of,
    uuid_arg,
    wants_page,
)
from ingestor.context import INGEST
from ingestor.errors import ApiError, Invalid
from ingestor.ids import key_digest
from ingestor.nodes import list_nodes
from ingestor.ops_db import OPERATOR
from ingestor.routes_node import status_page

routes = web.RouteTableDef()

ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
_FILES = {name: resources.files("ingestor.console_assets").joinpath(name).read_bytes()
          for name in ASSETS}
MAX_TOKEN = 200
PAGE, MAX_PAGE = 50, 200  # dead letters a page


Body = Callable[[Session, UUID | None], Awaitable[str]]


async def _chrome(request: web.Request, current: str, body_of: Body) -> web.Response:
    """A page of the console: the session, its scope and the organizations around it."""
    session = await session_of(request)
    scope = scope_of(session, request.query)
    pool = request.app[INGEST].pool()
    orgs = await ops_console.organizations(pool) if session.operator else ()
    body = await body_of(session, scope)
    return page(console_pages.layout(session, scope, orgs, current, body,
                                     request.query.get("notice")))


@routes.get("/dashboard")
async def dashboard(request: web.Request) -> web.StreamResponse:
    if console_sessions.COOKIE not in request.cookies and (
            not wants_page(request) or "Authorization" in request.headers):
        return await status_page(request)  # scripts and probes: the status page, as before

    async def body(session: Session, scope: UUID | None) -> str:
        return console_pages.live()
    return await _chrome(request, "live", body)


@routes.get("/dashboard/login")
async def login_page(request: web.Request) -> web.Response:
    return page(console_pages.login())


async def _who(request: web.Request, token: str) -> tuple[Any, bytes | None, str] | None:
    """(organization or None, key hash, who) for a token, or None when it is neither the
    admin token nor a live API key."""
    ingest = request.app[INGEST]
    admin = ingest.admin_token
    if admin is not None and hmac.compare_digest(token.encode(), admin.encode()):
        return None, None, OPERATOR
    if admin is None and ingest.loopback_only and token == "":
        return None, None, OPERATOR
    if well_formed(token):
        org = await ingest.keys.lookup(token)
        if org is not None:
            digest = key_digest(token)
            return org.id, digest, "key_" + digest[:8].hex()
    return None


@routes.post("/dashboard/login")
async def login(request: web.Request) -> web.Response:
    if not same_origin(request):
        raise ApiError(403, "Cross-origin request refused")
    form = await request.post()
    token = str(form.get("token", "")).strip()
    found = await _who(request, token) if len(token) <= MAX_TOKEN else None
    if found is None:
        return page(console_pages.login("Unknown token or key"), 401)
    org_id, digest, who = found
    session_id, _ = await console_sessions.open_session(request.app[INGEST].pool(), org_id,
                                                        digest, who)
    response = web.HTTPSeeOther("/dashboard")
    console_sessions.set_cookie(response, request, session_id)
    raise response


@routes.post("/dashboard/logout")
async def logout(request: web.Request) -> web.Response:
    session = await session_of(request)
    form = await request.post()
    console_sessions.check_csrf(request, session, str(form.get("csrf", "")))
    await console_sessions.close_session(request.app[INGEST].pool(), request)
    response = web.HTTPSeeOther(LOGIN)
    console_sessions.clear_cookie(response, request)
    raise response


@routes.get("/dashboard/endpoints")
async def endpoints_page(request: web.Request) -> web.Response:
    async def body(session: Session, scope: UUID | None) -> str:
        rows = await ops_console.list_endpoints(request.app[INGEST].pool(), scope)
        return console_pages.endpoints(session, scope, rows)
    return await _chrome(request, "endpoints", body)


@routes.get("/dashboard/endpoints/{endpoint_id}")
async def endpoint_page(request: web.Request) -> web.Response:
    endpoint_id = path_uuid(request, "endpoint_id")

    async def body(session: Session, scope: UUID | None) -> str:
        pool = request.app[INGEST].pool()
        endpoint = await ops_endpoints.get_endpoint(pool, scope, endpoint_id)
        attempts = await ops_console.endpoint_attempts(pool, scope, endpoint_id)
        return console_pages.endpoint(session, scope, endpoint, attempts)
    return await _chrome(request, "endpoints", body)


def when(raw: str | None, name: str) -> datetime | None:
    """A time from a form or query (ISO 8601; a datetime-local field's, taken as UTC)."""
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid(f"{name} must be a time (ISO 8601)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def dead_letter_search(params: Any) -> dict[str, str]:
    return {k: str(params.get(k, "")).strip() for k in
            ("endpoint_id", "event_type", "since", "until", "error")}


def _limit(raw: str | None) -> int:
    try:
        limit = int(raw or PAGE)
    except ValueError:
        raise Invalid("limit must be a number") from None
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be 1 to {MAX_PAGE}")
    return limit


async def search_dead_letters(pool: Any, scope: Any, params: Any) -> Any:
    s = dead_letter_search(params)
    return await ops_console.dead_letters(
        pool, scope, endpoint_id=uuid_arg(s["endpoint_id"], "endpoint_id"),
        event_type=s["event_type"] or None, since=when(s["since"], "since"),
        until=when(s["until"], "until"), error=s["error"][:200] or None,
        before=params.get("before") or None, limit=_limit(params.get("limit")))


@routes.get("/dashboard/dead-letters")
async def dead_letters_page(request: web.Request) -> web.Response:
    async def body(session: Session, scope: UUID | None) -> str:
        found = await search_dead_letters(request.app[INGEST].pool(), scope, request.query)
        return console_pages.dead_letters(session, scope, found,
                                          dead_letter_search(request.query), request.path_qs)
    return await _chrome(request, "dead", body)


@routes.get("/dashboard/audit")
async def audit_page(request: web.Request) -> web.Response:
    async def body(session: Session, scope: UUID | None) -> str:
        return console_pages.audit(await ops_console.audit_trail(
            request.app[INGEST].pool(), scope))
    return await _chrome(request, "audit", body)


@routes.get("/dashboard/nodes")
async def nodes_page(request: web.Request) -> web.Response:
    async def body(session: Session, scope: UUID | None) -> str:
        operator_only(session)
        return console_pages.nodes(await list_nodes(request.app[INGEST].pool()))
    return await _chrome(request, "nodes", body)


@routes.get("/dashboard/assets/{name}")
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.Response(body=_FILES[name], content_type=ASSETS[name], charset="utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options":
                                 "nosniff"})

