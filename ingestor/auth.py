"""API keys: creation, rotation, and authentication with a short-lived cache.

A key is looked up by its SHA-256. Answers (found or not) are cached in memory for
`ttl` seconds (0.5 by default), so a rotated key is refused on every node within
that time without a LISTEN connection to lose; concurrent look-ups of one key
share a single query. Failures are not cached: the database away is a 503 for every
request that shared the look-up (see `http.errors`), and the next request asks again.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web

from ingestor import ops_orgs, queries
from ingestor.errors import ApiError
from ingestor.http import REQUEST_ORG
from ingestor.ids import KEY_PREFIX, key_digest

# The tiers and their default requests per minute (TRIGGERD_TIER_LIMITS changes them).
TIER_LIMITS = {"free": 100, "pro": 1_000, "business": 10_000, "enterprise": 100_000}


@dataclass(frozen=True, slots=True)
class Org:
    id: UUID
    name: str
    tier: str
    rate_limit_per_minute: int


# What new_api_key() makes: the prefix and 32 bytes in unpadded URL-safe base64. Anything
# else is refused before a look-up, and never cached.
_KEY_SHAPE = re.compile(KEY_PREFIX + r"[A-Za-z0-9_-]{43}")


def presented_key(request: web.Request) -> str | None:
    """The key from X-API-Key, or from `Authorization: Bearer <key>`."""
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def well_formed(key: str) -> bool:
    return _KEY_SHAPE.fullmatch(key) is not None


def key_id(request: web.Request) -> str:
    """The public id of the key the request authenticated with (after `authenticate`):
    `key_` and the first 8 bytes of its SHA-256 (the stored key_hash) in hex. The same
    on every node, and of no use as a key."""
    key = presented_key(request)
    if key is None:
        raise ApiError(401, "Missing API key (X-API-Key header or Authorization: Bearer)")
    return "key_" + key_digest(key)[:8].hex()


def admin_presented(request: web.Request, admin_token: str) -> bool:
    """True when the request carries `Authorization: Bearer <admin_token>`."""
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    # Compared as bytes: a header may carry any byte (aiohttp keeps the ones that are not
    # UTF-8 as surrogates), and compare_digest refuses non-ASCII text.
    presented = token.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented, admin_token.encode())


def is_admin(request: web.Request, admin_token: str | None, loopback_only: bool) -> bool:
    """An operator: one presenting the admin token, or anyone on a node without a token
    that listens on this machine only (a node on another address needs the token)."""
    if admin_token is None:
        return loopback_only
    return admin_presented(request, admin_token)


def check_admin(request: web.Request, admin_token: str | None,
                loopback_only: bool = True) -> None:
    """Refuses the request unless it comes from an operator (is_admin)."""
    if is_admin(request, admin_token, loopback_only):
        return
    if admin_token is None:
        raise ApiError(403, "This node listens beyond this machine and has no admin token: "
                            "set TRIGGERD_ADMIN_TOKEN to use this")
    raise ApiError(401, "Admin token required (Authorization: Bearer <TRIGGERD_ADMIN_TOKEN>)")


class KeyStore:
    def __init__(self, pool: Callable[[], asyncpg.Pool], ttl: float = 0.5,
                 size: int = 10_000, tier_limits: Mapping[str, int] | None = None) -> None:
        self._pool = pool
        # Read at each look-up: a reload replaces it, cached answers follow within `ttl`.
        self.tier_limits = dict(tier_limits or TIER_LIMITS)
        self._ttl = ttl
        self._size = size
        # key -> (expiry on the monotonic clock, answer); a plain dict because this is
        # on every request's path.
        self._cache: dict[str, tuple[float, Org | None]] = {}
        self._inflight: dict[str, asyncio.Future[Org | None]] = {}

    async def authenticate(self, request: web.Request) -> Org:
        key = presented_key(request)
        if key is None:
            raise ApiError(401, "Missing API key (X-API-Key header or Authorization: Bearer)")
        if not well_formed(key):
            raise ApiError(401, "Invalid API key")
        org = await self.lookup(key)
        if org is None:
            raise ApiError(401, "Invalid API key")
        REQUEST_ORG.set(org.id)
        return org

    async def lookup(self, key: str) -> Org | None:
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        shared = self._inflight.get(key)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[Org | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            row = await self._pool().fetchrow(queries.ORG_BY_KEY, key_digest(key))
            org = None if row is None else self._org(row)
            if len(self._cache) >= self._size:
                self._cache.clear()  # crude but bounded; live keys come back in one query
            self._cache[key] = (time.monotonic() + self._ttl, org)
            future.set_result(org)
            return org
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters get it through shield
            raise
        finally:
            del self._inflight[key]

    async def create_org(self, name: str, tier: str) -> tuple[str, Org]:
        """A new organization and its first key (returned in clear, once)."""
        new = await ops_orgs.create_organization(self._pool(), name, tier, self.tier_limits)
        return new.api_key, Org(new.organization_id, new.organization_name, new.tier,
                                new.rate_limit_per_minute)

    def _org(self, row: Any) -> Org:
        return Org(row["id"], row["name"], row["tier"], self.tier_limits[row["tier"]])

    async def rotate(self, org: Org, old_key: str) -> str:
        """Revokes the organization's keys and issues a new one."""
        rotated = await ops_orgs.rotate_keys(self._pool(), org.id)
        self._cache.pop(old_key, None)
        return rotated.api_key
