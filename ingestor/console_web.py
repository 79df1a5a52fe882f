"""What the console's routes share: the request's session and scope, and its answers.

`session_of` finds the session (console_sessions.current) or refuses: a page asked for
by a browser is sent to the sign-in page, anything else is a JSON 401. `scope_of` is the
organization a request acts on: a tenant's own, always; an operator's choice (`org`),
or None for every organization.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from ingestor import console_sessions
from ingestor.console_sessions import Session
from ingestor.context import INGEST
from ingestor.errors import ApiError, Invalid
from ingestor.http import json_response
from ingestor.ids import parse_uuid
from ingestor.shapes import to_json

# No inline script or style anywhere; only the node's own assets; no framing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "X-Frame-Options": "DENY"}
LOGIN = "/dashboard/login"


def wants_page(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


async def session_of(request: web.Request) -> Session:
    ingest = request.app[INGEST]
    session = await console_sessions.current(ingest.pool(), request, ingest.admin_token)
    if session is not None:
        return session
    if wants_page(request) and "Authorization" not in request.headers:
        raise web.HTTPSeeOther(LOGIN)
    raise ApiError(401, "Sign in at /dashboard/login, or send Authorization: Bearer "
                        "<TRIGGERD_ADMIN_TOKEN>")


def operator_only(session: Session) -> None:
    if not session.operator:
        raise ApiError(403, "For operators only")


def uuid_arg(raw: str | None, name: str) -> UUID | None:
    if raw is None or raw == "":
        return None
    parsed = parse_uuid(raw)
    if parsed is None:
        raise Invalid(f"{name} must be a UUID")
    return parsed


def path_uuid(request: web.Request, name: str) -> UUID:
    """A UUID from the route's path (a malformed one is a 400)."""
    parsed = uuid_arg(request.match_info[name], name)
    if parsed is None:
        raise Invalid(f"{name} must be a UUID")
    return parsed


def scope_of(session: Session, params: Any) -> UUID | None:
    if not session.operator:
        return session.org_id
    return uuid_arg(params.get("org"), "org")


def page(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers=HEADERS)


def json_of(record: Any) -> web.Response:
    return json_response(to_json(record), headers={"Cache-Control": "no-store"})
