"""Pruner: retention. Deletes events older than TRIGGERD_RETENTION once every delivery
of theirs is final, with their deliveries and attempts, in bounded batches.

Events still waiting to be routed or delivered are kept whatever their age. Once an
event is pruned its dedup_id may be used again: deduplication is exact within the
retention. A database error skips the tick.

Messages: `Tick`. Restart: permanent.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import asyncpg

from supervisor import PeriodicActor
from triggerd_sql.faults import is_transient
from workers import queries

log = logging.getLogger(__name__)

BATCH = 1000
MAX_BATCHES = 20  # per tick: a backlog is worked off over several ticks


def cutoff_id(before: float) -> uuid.UUID:
    """The smallest UUIDv7 of the millisecond `before` (Unix seconds)."""
    millis = max(0, int(before * 1000))
    return uuid.UUID(int=(millis & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | 0x2 << 62)


class Pruner(PeriodicActor):
    def __init__(self, pool: Callable[[], asyncpg.Pool], *, retention: float,
                 interval: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(interval=interval, name="Pruner")
        self._pool = pool
        self._retention = retention
        self._clock = clock
        self.pruned = 0

    async def tick(self) -> None:
        started = time.perf_counter()
        cutoff = cutoff_id(self._clock() - self._retention)
        total = 0
        try:
            for _ in range(MAX_BATCHES):
                status = await self._pool().execute(queries.PRUNE_EVENTS, cutoff, BATCH)
                count = int(status.rpartition(" ")[2])
                total += count
                if count < BATCH:
                    break
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("pruning skipped: %s", exc)
        if total:
            self.pruned += total
            log.info("pruned events=%d took_ms=%.1f", total, (time.perf_counter() - started) * 1000)
