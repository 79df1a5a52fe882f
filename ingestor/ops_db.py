"""What the operations (ingestor.ops_*) take to reach PostgreSQL, and who acts.

An operation takes `db`, a pool or a connection (one already in a transaction, when the
caller wants several operations to commit together), and a `Scope`: the caller's
organization id, or None for an operator acting across organizations where the
operation allows it. The API passes the authenticated organization, always.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

# asyncpg.Pool or asyncpg.Connection (the driver has no type hints, so both are Any).
Db: TypeAlias = Any
Scope: TypeAlias = UUID | None
# Who acts, as recorded beside a change (paused_by): a key id from the API
# (auth.key_id), or an operator's name from the console or the command line.
OPERATOR = "operator"


@asynccontextmanager
async def connection(db: Db) -> AsyncIterator[Any]:
    """One connection of `db`: acquired from a pool for the block, or `db` itself."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


def affected(status: str) -> int:
    """The rows an UPDATE or DELETE changed, from its status line (`UPDATE 12`)."""
    return int(status.split()[-1])
