"""Console sessions and CSRF: who a console request comes from, and whether it may act.

Signing in (routes_console) stores a session row (sql/010) keyed by the SHA-256 of a
random 32-byte id; the cookie carries the id (HttpOnly, SameSite=Strict, Path=/dashboard,
Secure over https). Every node reads the same table, so a session opened on one node is
honoured by all, and logout or expiry ends it everywhere at once. A session ends after
IDLE_S without use or ABSOLUTE_S after sign-in; a tenant's also when its key is revoked.

Each session has a synchronizer token (`csrf`), rendered into the console's pages; a
state-changing request must carry it (form field `csrf` or header X-CSRF-Token,
compared in constant time) and come from the console's own origin (Origin, or Referer
when the browser sent no Origin). Scripts with `Authorization: Bearer <admin token>` carry
no ambient credential, so they need neither. A node without an admin token (one that
listens on loopback only) takes an empty token at sign-in; its console still needs a
session, so another site's page cannot act through the visitor's browser.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

from aiohttp import web

from ingestor import queries_console as q
from ingestor.auth import admin_presented
from ingestor.errors import ApiError
from ingestor.ops_db import OPERATOR, Db

COOKIE = "triggerd_console"
COOKIE_PATH = "/dashboard"
IDLE_S = 12 * 3600
ABSOLUTE_S = 7 * 24 * 3600
PRUNE_BATCH = 1000
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class Session:
    """Who a console request acts as: an operator (org_id None) or one organization."""

    org_id: UUID | None
    who: str  # 'operator' or the key id
    csrf: str
    bearer: bool = False  # the admin token in a header, not a cookie: no CSRF to check

    @property
    def operator(self) -> bool:
        return self.org_id is None


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).digest()


async def open_session(db: Db, org_id: UUID | None, key_hash: bytes | None,
                       who: str) -> tuple[str, Session]:
    """A new session: its id (for the cookie, never stored) and what it grants."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await db.execute(q.PRUNE_SESSIONS, PRUNE_BATCH)
    await db.execute(q.CREATE_SESSION, _digest(session_id), org_id, key_hash, who, csrf,
                     float(IDLE_S), float(ABSOLUTE_S))
    return session_id, Session(org_id, who, csrf)


async def close_session(db: Db, request: web.Request) -> None:
    session_id = request.cookies.get(COOKIE)
    if session_id:
        await db.execute(q.DELETE_SESSION, _digest(session_id))


async def current(db: Db, request: web.Request, admin_token: str | None) -> Session | None:
    """The request's session (its cookie's, or an operator's from the Bearer admin
    token), or None."""
    if admin_token is not None and admin_presented(request, admin_token):
        return Session(None, OPERATOR, "", bearer=True)
    session_id = request.cookies.get(COOKIE)
    if session_id and len(session_id) <= 100:
        row = await db.fetchrow(q.TOUCH_SESSION, _digest(session_id), float(IDLE_S))
        if row is not None:
            return Session(row["org_id"], row["who"], row["csrf"])
    return None


def set_cookie(response: web.StreamResponse, request: web.Request, session_id: str) -> None:
    response.set_cookie(COOKIE, session_id, path=COOKIE_PATH, httponly=True,
                        samesite="Strict", secure=request.secure, max_age=ABSOLUTE_S)


def clear_cookie(response: web.StreamResponse, request: web.Request) -> None:
    response.set_cookie(COOKIE, "", path=COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=request.secure, max_age=0)


def same_origin(request: web.Request) -> bool:
    own = (request.scheme, request.host)
    origin = request.headers.get("Origin")
    if origin is None:
        origin = request.headers.get("Referer")
    if not origin:
        return False
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) == own


def check_csrf(request: web.Request, session: Session, presented: str | None) -> None:
    """Refuses (403) a state-changing request of a cookie session without the session's
    token or from another origin."""
    if session.bearer:
        return
    token = (presented or request.headers.get(CSRF_HEADER) or "").encode(
        "utf-8", "surrogateescape")
    if not hmac.compare_digest(token, session.csrf.encode()):
        raise ApiError(403, "Missing or wrong CSRF token")
    if not same_origin(request):
        raise ApiError(403, "Cross-origin request refused")
