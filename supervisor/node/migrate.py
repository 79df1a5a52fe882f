"""Schema migrations: the numbered files in sql/, applied in order, each once.

Each file runs in its own transaction and is recorded in `schema_migrations`.
A session-level advisory lock serializes nodes that start at the same moment:
the second one waits, then finds nothing left to apply.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

def _sql_dir() -> Path:
    """sql/ of a source checkout, else the copy installed with the distribution."""
    checkout = Path(__file__).resolve().parents[2] / "sql"
    if checkout.is_dir():
        return checkout
    import triggerd_sql

    return Path(next(iter(triggerd_sql.__path__)))


SQL_DIR = _sql_dir()
_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")

# Arbitrary constant shared by every node: the advisory lock that serializes migrations.
LOCK_KEY = 0x7472_6967_6765_7264 & 0x7FFF_FFFF_FFFF_FFFF

# Creates the bookkeeping table; safe to run concurrently (under the lock) and repeatedly.
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
# The versions already applied.
APPLIED = "SELECT version FROM schema_migrations"
# Records one applied migration: $1 version, $2 file name.
RECORD = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migrations in `sql_dir`, ordered by version; refuses gaps in naming."""
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name {path.name!r} is not NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations share version {version}: {path.name}")
        found[version] = Migration(version, path.name, path)
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Applies the pending migrations on `conn`; returns the names applied."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(CREATE_TABLE)
        done = {r["version"] for r in await conn.fetch(APPLIED)}
        for migration in discover(sql_dir):
            if migration.version in done:
                continue
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute(migration.path.read_text())
                await conn.execute(RECORD, migration.version, migration.name)
            log.info(
                "applied migration %s took_ms=%.1f",
                migration.name,
                (time.perf_counter() - started) * 1000,
            )
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now
