"""Pruner: retention. Deletes events older than TRIGGERD_RETENTION once every delivery
of theirs is final, with their deliveries and attempts, and alerts older than
ALERT_RETENTION_S (or the retention, when shorter), in bounded batches.

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
from datetime import UTC, datetime

import asyncpg

from supervisor import PeriodicActor
from triggerd_sql.faults import is_transient
from workers import queries, queries_alerts

log = logging.getLogger(__name__)

BATCH = 1000
MAX_BATCHES = 20  # per tick: a backlog is worked off over several ticks
ALERT_RETENTION_S = 7 * 86_400.0


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
        self.pruned_alerts = 0

    async def tick(self) -> None:
        started = time.perf_counter()
        now = self._clock()
        events = alerts = 0
        try:
            events = await self._batches(queries.PRUNE_EVENTS, cutoff_id(now - self._retention))
            keep = min(self._retention, ALERT_RETENTION_S)
            alerts = await self._batches(queries_alerts.PRUNE_ALERTS,
                                         datetime.fromtimestamp(now - keep, UTC))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("pruning skipped: %s", exc)
        self.pruned += events
        self.pruned_alerts += alerts
        if events or alerts:
            log.info("pruned events=%d alerts=%d took_ms=%.1f", events, alerts,
                     (time.perf_counter() - started) * 1000)

    async def _batches(self, query: str, cutoff: object) -> int:
        """Runs a bounded delete until a batch comes back short, MAX_BATCHES at most."""
        total = 0
        for _ in range(MAX_BATCHES):
            status = await self._pool().execute(query, cutoff, BATCH)
            count = int(status.rpartition(" ")[2])
            total += count
            if count < BATCH:
                break
        return total
