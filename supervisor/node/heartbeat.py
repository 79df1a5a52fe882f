"""Heartbeat: this node's row in `nodes` (sql/009), so an operator sees which nodes run.

The first beat comes at start (its stats show the parts started so far: the node is
still starting), the next every TRIGGERD_HEARTBEAT_INTERVAL (5 s, jittered): one
upsert of the node's identity and its live stats (a JSON object the node gives as
`stats()`), with `seen_at` on PostgreSQL's clock, so every reader compares against
one clock. A node is alive while seen within ALIVE_BEATS of its own
intervals (ingestor/nodes.py lists them). Every PRUNE_EVERY beats the rows of nodes not
seen for PRUNE_AFTER (killed, or their host gone) are deleted, a bounded batch at a
time. A clean stop deletes the node's row; a crash or a kill leaves it to go stale.
A transient database error skips the beat (the next one comes on time).

It knows nothing of webhooks: the node gives it an identity, a pool and `stats()`.
Messages: `Tick`. Restart: permanent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from supervisor import PeriodicActor
from supervisor.throttle import Throttle
from triggerd_sql.faults import is_transient

log = logging.getLogger(__name__)

ALIVE_BEATS = 3  # a node not seen for this many of its intervals is not alive
PRUNE_AFTER = timedelta(days=1)
PRUNE_EVERY = 12  # beats (a minute at the default interval)
PRUNE_BATCH = 100

# One beat: inserts the node's row or refreshes it. $1 name, $2 roles, $3 version,
# $4 pid, $5 host, $6 when the node started, $7 its heartbeat interval (seconds),
# $8 its live stats (JSON text).
BEAT = """
INSERT INTO nodes (name, roles, version, pid, host, started_at, interval_s, stats, seen_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, now())
ON CONFLICT (name) DO UPDATE
SET roles = EXCLUDED.roles, version = EXCLUDED.version, pid = EXCLUDED.pid,
    host = EXCLUDED.host, started_at = EXCLUDED.started_at,
    interval_s = EXCLUDED.interval_s, stats = EXCLUDED.stats, seen_at = now()
"""

# A clean stop: the node leaves. $1 its name.
LEAVE = "DELETE FROM nodes WHERE name = $1"

# The rows of nodes not seen for long, oldest first, at most $2 of them; $1 how long.
# The table holds one row per node that ran lately: a few, read without an index.
PRUNE = """
DELETE FROM nodes
WHERE name IN (SELECT name FROM nodes WHERE seen_at < now() - $1::interval
               ORDER BY seen_at LIMIT $2)
"""


@dataclass(frozen=True, slots=True)
class Identity:
    """What a node's row says about it, besides its stats."""

    name: str
    roles: tuple[str, ...]
    version: str
    pid: int
    host: str
    started_at: datetime


class Heartbeat(PeriodicActor):
    def __init__(self, pool: Callable[[], asyncpg.Pool], identity: Identity,
                 stats: Callable[[], Mapping[str, Any]], *, interval: float = 5.0) -> None:
        super().__init__(interval=interval, name="Heartbeat")
        self._pool = pool
        self.identity = identity
        self._stats = stats
        self.beats = 0
        self.skipped = 0
        self._warn = Throttle(60.0)

    async def init(self) -> None:
        self.wake()  # the first beat at once: the node shows up as soon as it runs

    async def tick(self) -> None:
        try:
            await self._beat()
            if self.beats % PRUNE_EVERY == 1:
                await self._prune()
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.skipped += 1
            self._warn.log(log, logging.WARNING, "heartbeat skipped: %s", exc)

    async def _beat(self) -> None:
        me = self.identity
        await self._pool().execute(BEAT, me.name, list(me.roles), me.version, me.pid, me.host,
                                   me.started_at, self.interval,
                                   orjson.dumps(dict(self._stats())).decode())
        self.beats += 1

    async def _prune(self) -> None:
        status = await self._pool().execute(PRUNE, PRUNE_AFTER, PRUNE_BATCH)
        pruned = int(status.rpartition(" ")[2])
        if pruned:
            log.info("forgot nodes=%d not seen for %s", pruned, PRUNE_AFTER)

    async def terminate(self, reason: BaseException | None) -> None:
        if reason is not None:
            return  # a crash: the row stays, refreshed by the next instance or gone stale
        try:
            await self._pool().execute(LEAVE, self.identity.name)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.info("node row left to go stale: %s", exc)
