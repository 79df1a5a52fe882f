"""Rescuer: the periodic sweep that keeps nothing stuck.

Each tick, in bounded batches: returns expired leases to the queue (a node died
mid-attempt; the attempt is refunded, the rescue counted, and at `max_rescues` the
delivery is a dead letter instead), ends the undelivered deliveries of disabled
endpoints (dead letters) and deleted ones (cancelled), settles their events, and
disables endpoints that have had no success for TRIGGERD_DISABLE_AFTER while failing.
A transient database error skips the tick.

Messages: `Tick`. Restart: permanent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import asyncpg

from supervisor import PeriodicActor
from supervisor.throttle import Throttle
from triggerd_sql.faults import is_transient
from workers import metrics, queries
from workers.alerter import Alert

log = logging.getLogger(__name__)

BATCH = 1000
MAX_BATCHES = 20  # per tick: the rest waits for the next one


class Rescuer(PeriodicActor):
    def __init__(self, pool: Callable[[], asyncpg.Pool], alert: Callable[[Alert], None], *,
                 interval: float = 5.0, disable_after: float = 5 * 86_400.0,
                 max_rescues: int = 3) -> None:
        super().__init__(interval=interval, name="Rescuer")
        self._pool = pool
        self._alert = alert
        self._disable_after = disable_after
        self._max_rescues = max_rescues
        self._warn = Throttle(30.0)

    async def tick(self) -> None:
        started = time.perf_counter()
        try:
            rescued = await self._rescue()
            ended = await self._end_held()
            disabled = await self._disable_stale()
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._warn.log(log, logging.WARNING, "maintenance tick skipped: %s", exc)
            return
        if rescued or ended or disabled:
            log.info("rescued=%d ended=%d disabled=%d took_ms=%.1f", rescued, ended,
                     disabled, (time.perf_counter() - started) * 1000)

    async def _rescue(self) -> int:
        total = 0
        for _ in range(MAX_BATCHES):
            async with self._pool().acquire() as conn, conn.transaction():
                rows = await conn.fetch(queries.RESCUE_LEASES, BATCH, self._max_rescues)
                dead = [r["event_id"] for r in rows if r["status"] == "dead_letter"]
                if dead:
                    await conn.execute(queries.SETTLE_EVENTS, sorted(set(dead)))
            metrics.RESCUED.labels("requeued").inc(len(rows) - len(dead))
            metrics.RESCUED.labels("dead_letter").inc(len(dead))
            metrics.DEAD_LETTERS.inc(len(dead))
            if dead:
                log.warning("%d deliveries made dead letters after %d rescues", len(dead),
                            self._max_rescues)
            total += len(rows)
            if len(rows) < BATCH:
                break
        return total

    async def _end_held(self) -> int:
        total = 0
        for _ in range(MAX_BATCHES):
            async with self._pool().acquire() as conn, conn.transaction():
                rows = await conn.fetch(queries.END_HELD_DELIVERIES, BATCH)
                if rows:
                    await conn.execute(queries.SETTLE_EVENTS,
                                       sorted({r["event_id"] for r in rows}))
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
