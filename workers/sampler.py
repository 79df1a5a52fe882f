"""Sampler: the queue's history, for the console's charts (sql/011).

Every tick (15 s, jittered), in one transaction under a statement timeout, it takes a
transaction-level advisory lock (one node of the fleet holds it at a time; a node that
does not get it skips the tick) and, unless the current minute (PostgreSQL's clock) is
sampled already, writes its samples: the waiting deliveries (count, due now, the
oldest due one's age) of the whole fleet and of the MAX_ORGS organizations with the
most waiting. The holder also deletes samples older than RETENTION, a bounded batch.
A transient database error (the timeout too) skips the tick: the next one, a quarter
of a minute later, tries again.

Messages: `Tick`. Restart: permanent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import asyncpg

from supervisor import PeriodicActor
from supervisor.throttle import Throttle
from triggerd_sql.faults import is_transient
from workers import queries
from workers import queries_samples as q

log = logging.getLogger(__name__)

LOCK_KEY = 0x7472_6773_616D_706C  # "trgsampl": fixed, so every node asks for the same lock
MAX_ORGS = 1000
STATEMENT_TIMEOUT_MS = 2000
RETENTION = timedelta(days=2)
PRUNE_BATCH = 5000  # per tick: more than a minute's rows (MAX_ORGS + 1)


class Sampler(PeriodicActor):
    def __init__(self, pool: Callable[[], asyncpg.Pool], *, interval: float = 15.0) -> None:
        super().__init__(interval=interval, name="Sampler")
        self._pool = pool
        self.written = 0  # minutes this node sampled
        self.pruned = 0
        self.skipped = 0
        self._warn = Throttle(60.0)

    async def tick(self) -> None:
        started = time.perf_counter()
        try:
            rows, pruned = await self._sample()
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.skipped += 1
            self._warn.log(log, logging.WARNING, "queue sample skipped: %s", exc)
            return
        self.pruned += pruned
        if rows:
            self.written += 1
            log.info("queue sampled rows=%d pruned=%d took_ms=%.1f", rows, pruned,
                     (time.perf_counter() - started) * 1000)

    async def _sample(self) -> tuple[int, int]:
        """The rows written and the old samples deleted; (0, 0) when another node holds
        the lock."""
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute(queries.SET_STATEMENT_TIMEOUT, str(STATEMENT_TIMEOUT_MS))
            if not await conn.fetchval(q.TRY_LOCK, LOCK_KEY):
                return 0, 0
            rows = 0
            if not await conn.fetchval(q.SAMPLED):
                rows = _count(await conn.execute(q.SAMPLE, MAX_ORGS))
            pruned = _count(await conn.execute(q.PRUNE_SAMPLES, RETENTION, PRUNE_BATCH))
        return rows, pruned


def _count(status: str) -> int:
    return int(status.rpartition(" ")[2])
