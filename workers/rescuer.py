"""Rescuer: the periodic sweep that keeps nothing stuck.

Each tick, in bounded batches: returns expired leases to the queue (a node died
mid-attempt; the attempt is refunded), dead-letters the undelivered deliveries of
disabled endpoints, and disables endpoints that have had no success for
TRIGGERD_DISABLE_AFTER while failing. A database error skips the tick.

Messages: `Tick`. Restart: permanent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import asyncpg

from supervisor import PeriodicActor
from workers import queries
from workers.alerter import Alert

log = logging.getLogger(__name__)

BATCH = 1000
MAX_BATCHES = 20  # per tick: the rest waits for the next one


class Rescuer(PeriodicActor):
    def __init__(self, pool: Callable[[], asyncpg.Pool], alert: Callable[[Alert], None], *,
                 interval: float = 5.0, disable_after: float = 5 * 86_400.0) -> None:
        super().__init__(interval=interval, name="Rescuer")
        self._pool = pool
        self._alert = alert
        self._disable_after = disable_after

    async def tick(self) -> None:
        started = time.perf_counter()
        try:
            rescued = await self._batches(queries.RESCUE_LEASES)
            dead = await self._dead_letter_disabled()
            disabled = await self._disable_stale()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("maintenance tick skipped: %s", exc)
            return
        if rescued or dead or disabled:
            log.info("rescued=%d dead_lettered=%d disabled=%d took_ms=%.1f", rescued, dead,
                     disabled, (time.perf_counter() - started) * 1000)

    async def _batches(self, query: str) -> int:
        total = 0
        for _ in range(MAX_BATCHES):
            status = await self._pool().execute(query, BATCH)
            count = int(status.rpartition(" ")[2])
            total += count
            if count < BATCH:
                break
        return total

    async def _dead_letter_disabled(self) -> int:
        total = 0
        for _ in range(MAX_BATCHES):
            async with self._pool().acquire() as conn, conn.transaction():
                rows = await conn.fetch(queries.DEAD_LETTER_DISABLED, BATCH)
                if rows:
                    await conn.execute(queries.SETTLE_EVENTS, [r["event_id"] for r in rows])
            total += len(rows)
            if len(rows) < BATCH:
                break
        return total

    async def _disable_stale(self) -> int:
        rows = await self._pool().fetch(queries.STALE_ENDPOINTS, self._disable_after)
        if not rows:
            return 0
        days = self._disable_after / 86_400
        reason = f"no successful delivery for {days:g} day(s)"
        disabled = await self._pool().fetch(queries.DISABLE_ENDPOINTS, [r["id"] for r in rows],
                                            [reason] * len(rows))
        for row in disabled:
            self._alert(Alert.disabled(row["id"], row["url"], row["disabled_reason"]))
        return len(disabled)
