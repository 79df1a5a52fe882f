"""The console's JSON reads (GET /dashboard/api/...) and its actions (POST
/dashboard/actions/{action}).

Reads answer for a console session or the Bearer admin token, within the caller's
scope: a tenant asking for another organization's endpoint gets 404, as from the API.
An action checks the CSRF token and the origin first (console_sessions.check_csrf, 403
JSON), then calls the operation and records it in the audit trail (who, when, what,
outcome). A form posted by the console's page is answered with a redirect back to it
carrying what happened (a refusal too); a JSON request with the JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from aiohttp import web

from ingestor import console_sessions, ops_console, ops_deliveries, ops_endpoints
from ingestor.console_sessions import Session
from ingestor.console_web import (
    json_of,
    operator_only,
    path_uuid,
    scope_of,
    session_of,
    uuid_arg,
)
from ingestor.context import INGEST
from ingestor.errors import ApiError, Invalid
from ingestor.nodes import list_nodes
from ingestor.ops_db import Db
from ingestor.records_console import ActionDone
from ingestor.routes_console import search_dead_letters, when

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_NOTE = 1000
Action = Callable[[Db, Session, UUID | None, Any], Awaitable[tuple[UUID | None, str, str]]]


@routes.get("/dashboard/api/live")
async def live(request: web.Request) -> web.Response:
    session = await session_of(request)
    return json_of(await ops_console.live(request.app[INGEST].pool(),
                                          scope_of(session, request.query)))


@routes.get("/dashboard/api/endpoints")
async def endpoints(request: web.Request) -> web.Response:
    session = await session_of(request)
    return json_of({"endpoints": await ops_console.list_endpoints(
        request.app[INGEST].pool(), scope_of(session, request.query))})


@routes.get("/dashboard/api/endpoints/{endpoint_id}/attempts")
async def attempts(request: web.Request) -> web.Response:
    session = await session_of(request)
    scope = scope_of(session, request.query)
    endpoint_id = path_uuid(request, "endpoint_id")
    return json_of({"attempts": await ops_console.endpoint_attempts(
        request.app[INGEST].pool(), scope, endpoint_id)})  # NotFound out of scope


@routes.get("/dashboard/api/dead-letters")
async def dead_letters(request: web.Request) -> web.Response:
    session = await session_of(request)
    return json_of(await search_dead_letters(request.app[INGEST].pool(),
                                             scope_of(session, request.query), request.query))


@routes.get("/dashboard/api/audit")
async def audit(request: web.Request) -> web.Response:
    session = await session_of(request)
    return json_of({"audit": await ops_console.audit_trail(
        request.app[INGEST].pool(), scope_of(session, request.query))})


@routes.get("/dashboard/api/nodes")
async def nodes(request: web.Request) -> web.Response:
    operator_only(await session_of(request))
    return json_of({"nodes": await list_nodes(request.app[INGEST].pool())})


def _delivery_id(args: Any) -> int:
    try:
        value = int(str(args.get("delivery_id", "")))
    except ValueError:
        raise Invalid("delivery_id must be a delivery's id") from None
    if value < 1:
        raise Invalid("delivery_id must be a delivery's id")
    return value


def _endpoint_id(args: Any) -> UUID:
    endpoint_id = uuid_arg(str(args.get("endpoint_id", "")), "endpoint_id")
    if endpoint_id is None:
        raise Invalid("endpoint_id is required")
    return endpoint_id


async def _retry(db: Db, session: Session, scope: UUID | None, args: Any) -> Any:
    delivery_id = _delivery_id(args)
    org = await ops_console.delivery_org(db, scope, delivery_id)
    await ops_deliveries.retry_delivery(db, scope, delivery_id)
    return org, str(delivery_id), f"Delivery {delivery_id} re-queued"


async def _resolve(db: Db, session: Session, scope: UUID | None, args: Any) -> Any:
    delivery_id = _delivery_id(args)
    note = str(args.get("note", "")).strip()[:MAX_NOTE] or None
    org = await ops_console.delivery_org(db, scope, delivery_id)
    await ops_deliveries.resolve_dead_letter(db, scope, delivery_id, by=session.who, note=note)
    return org, str(delivery_id), f"Delivery {delivery_id} resolved"


async def _retry_filtered(db: Db, session: Session, scope: UUID | None, args: Any) -> Any:
    endpoint_id = uuid_arg(str(args.get("endpoint_id", "")), "endpoint_id")
    org = scope
    if endpoint_id is not None:
        org = await ops_console.endpoint_org(db, scope, endpoint_id)
    if org is None:
        raise Invalid("Choose an organization or an endpoint to retry dead letters in bulk")
    event_type = str(args.get("event_type", "")).strip() or None
    selected = ops_deliveries.DeadLetterFilter(
        endpoint_id=endpoint_id, event_type=event_type,
        since=when(str(args.get("since", "")), "since"),
        until=when(str(args.get("until", "")), "until"))
    done = await ops_deliveries.retry_dead_letters(db, org, selected)
    target = f"endpoint {endpoint_id}" if endpoint_id else f"organization {org}"
    return org, target, f"{done.requeued} dead letters re-queued, {done.skipped} skipped"


async def _endpoint_action(db: Db, session: Session, scope: UUID | None, args: Any,
                           name: str) -> Any:
    endpoint_id = _endpoint_id(args)
    org = await ops_console.endpoint_org(db, scope, endpoint_id)
    if name == "pause":
        await ops_endpoints.pause_endpoint(db, scope, endpoint_id, by=session.who)
        return org, str(endpoint_id), "Endpoint paused"
    if name == "resume":
        await ops_endpoints.resume_endpoint(db, scope, endpoint_id)
        return org, str(endpoint_id), "Endpoint resumed"
    if name == "enable":
        await ops_endpoints.enable_endpoint(db, scope, endpoint_id)
        return org, str(endpoint_id), "Endpoint enabled, its breaker closed"
    if name == "disable":
        reason = str(args.get("reason", "")).strip()[:MAX_NOTE] or f"by {session.who}"
        await ops_endpoints.disable_endpoint(db, scope, endpoint_id, reason)
        return org, str(endpoint_id), f"Endpoint disabled: {reason}"
    since = when(str(args.get("since", "")), "since")
    if since is None:
        raise Invalid("since is required")
    done = await ops_endpoints.recover_endpoint(db, org, endpoint_id, since)
    return org, str(endpoint_id), f"{done.requeued} deliveries re-queued since {since}"


def _endpoint(name: str) -> Action:
    async def act(db: Db, session: Session, scope: UUID | None, args: Any) -> Any:
        return await _endpoint_action(db, session, scope, args, name)
    return act


ACTIONS: dict[str, Action] = {
    "retry": _retry, "resolve": _resolve, "retry-filtered": _retry_filtered,
    "pause": _endpoint("pause"), "resume": _endpoint("resume"),
    "enable": _endpoint("enable"), "disable": _endpoint("disable"),
    "recover": _endpoint("recover")}


def _back(args: Any) -> str:
    back = str(args.get("back", "/dashboard"))
    return back if back.startswith("/dashboard") and not back.startswith("//") else "/dashboard"


def _with_notice(back: str, notice: str) -> str:
    parts = urlsplit(back)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k != "notice"]
    return urlunsplit(("", "", parts.path, urlencode([*kept, ("notice", notice)]), ""))


@routes.post("/dashboard/actions/{action}")
async def act(request: web.Request) -> web.Response:
    session = await session_of(request)
    name = request.match_info["action"]
    form = request.content_type != "application/json"
    args: Any = await request.post() if form else await request.json()
    if not isinstance(args, dict) and not form:
        raise Invalid("The body must be a JSON object")
    console_sessions.check_csrf(request, session, str(args.get("csrf", "")) or None)
    if name not in ACTIONS:
        raise ApiError(404, "Not found")
    pool = request.app[INGEST].pool()
    scope = scope_of(session, args)
    try:
        org, target, message = await ACTIONS[name](pool, session, scope, args)
    except ApiError as exc:
        if not form:
            raise
        raise web.HTTPSeeOther(_with_notice(_back(args), f"Refused: {exc.message}")) from None
    await ops_console.audit(pool, org, who=session.who, action=name, target=target,
                            detail=message)
    log.info("console action %s by %s on %s: %s", name, session.who, target, message,
             extra={"org_id": str(org) if org else None})
    if form:
        raise web.HTTPSeeOther(_with_notice(_back(args), message))
    return json_of(ActionDone(name, message))
