"""Operations on organizations and their API keys: create an organization with its
first key, read one, list them (operators), add, list, revoke and rotate keys.

Plain async functions over `ops_db.Db`, returning `records`. A key is shown only in the
record that makes it (NewKey, IssuedKey, RotatedKey) and stored as its SHA-256; a key
is named anywhere else by its public id, `key_` and the digest's first 8 bytes in hex
(auth.key_id). `limits` are the requests per minute of each tier (the node's
TRIGGERD_TIER_LIMITS). A revoked key is refused on every node within the key cache's
TTL (0.5 s by default).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from ingestor import queries, queries_orgs
from ingestor.cursors import UUID_CURSOR, decode_cursor_text, page_of
from ingestor.errors import Invalid, NotFound
from ingestor.ids import key_digest, new_api_key, uuid7
from ingestor.ops_db import Db, connection
from ingestor.records import IssuedKey, KeyInfo, NewKey, Organization, Page, RotatedKey

ORGANIZATIONS_CURSOR = UUID_CURSOR
_KEY_ID = re.compile(r"key_([0-9a-f]{16})")


def public_key_id(digest: bytes) -> str:
    """A key's public id from its stored digest (the same as auth.key_id)."""
    return "key_" + bytes(digest[:8]).hex()


def _organization(row: Any, limits: Mapping[str, int]) -> Organization:
    return Organization(row["id"], row["name"], row["tier"], limits[row["tier"]],
                        row["active_keys"], row["created_at"])


def _key(row: Any) -> KeyInfo:
    return KeyInfo(public_key_id(row["key_hash"]), row["created_at"], row["revoked_at"])


async def create_organization(db: Db, name: str, tier: str,
                              limits: Mapping[str, int]) -> NewKey:
    """A new organization of `tier` and its first key."""
    key = new_api_key()
    async with connection(db) as conn, conn.transaction():
        row = await conn.fetchrow(queries.INSERT_ORG, uuid7(), name, tier)
        await conn.execute(queries.INSERT_KEY, key_digest(key), row["id"])
    return NewKey(key, row["id"], row["name"], row["tier"], limits[row["tier"]])


async def get_organization(db: Db, org_id: UUID, limits: Mapping[str, int]) -> Organization:
    row = await db.fetchrow(queries.ORG_SUMMARY, org_id)
    if row is None:
        raise NotFound("Organization not found")
    return _organization(row, limits)


async def list_organizations(db: Db, limits: Mapping[str, int], *, limit: int = 50,
                             cursor: str | None = None) -> Page[Organization]:
    """Every organization, oldest first: for operators, across organizations."""
    position = decode_cursor_text(cursor, ORGANIZATIONS_CURSOR)
    after = None if position is None else UUID(bytes=position)
    rows = await db.fetch(queries_orgs.LIST_ORGANIZATIONS, after, limit + 1)
    page, next_cursor = page_of(rows, limit, lambda row: row["id"].bytes)
    return Page(tuple(_organization(r, limits) for r in page), next_cursor)


async def create_key(db: Db, org_id: UUID) -> IssuedKey:
    """One more key for the organization, beside its others."""
    key = new_api_key()
    await db.execute(queries.INSERT_KEY, key_digest(key), org_id)
    return IssuedKey(key, public_key_id(key_digest(key)), org_id)


async def list_keys(db: Db, org_id: UUID) -> tuple[KeyInfo, ...]:
    """The organization's live keys, newest first."""
    return tuple(_key(r) for r in await db.fetch(queries_orgs.LIST_KEYS, org_id))


async def revoke_key(db: Db, org_id: UUID, key_id: str) -> KeyInfo:
    """Revokes one key by its public id (idempotent); NotFound for another
    organization's or an unknown one."""
    parsed = _KEY_ID.fullmatch(key_id)
    if parsed is None:
        raise Invalid("key id must be `key_` and 16 lower-case hex digits")
    prefix = bytes.fromhex(parsed[1])
    rows = await db.fetch(queries_orgs.REVOKE_KEY, org_id, prefix + bytes(24),
                          prefix + b"\xff" * 24)
    if not rows:
        raise NotFound("Key not found")
    return _key(rows[0])


async def rotate_keys(db: Db, org_id: UUID) -> RotatedKey:
    """Revokes every key of the organization and issues a new one."""
    key = new_api_key()
    async with connection(db) as conn, conn.transaction():
        await conn.execute(queries.REVOKE_KEYS, org_id)
        await conn.execute(queries.INSERT_KEY, key_digest(key), org_id)
    return RotatedKey(key, org_id)
