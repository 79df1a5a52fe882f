"""Poller: routes committed events into deliveries, and claims due deliveries.

Ticks every `interval` (100 ms) and at once when the Notifier signals committed work.
Each tick routes unrouted events in batches (one statement per batch, within a time
budget: workers/router.py) and then claims due deliveries, never more than the
DeliveryPool's free slots, highest priority first with a share for the longest
waiting, under a lease longer than the endpoint's request timeout, so a slow delivery is
never claimed twice. A transient database error skips the tick; the
next one tries again, so an outage neither spins nor kills the Poller.

Messages: `Tick`. Restart: permanent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from supervisor import PeriodicActor
from triggerd_sql.faults import is_transient
from workers import metrics, queries
from workers.deliverer import Job
from workers.pool import Claimed, DeliveryPool
from workers.router import Router

log = logging.getLogger(__name__)

AGED_SHARE = 0.2  # of claimed deliveries go to the longest-waiting, whatever their priority


class Poller(PeriodicActor):
    def __init__(self, pool: Callable[[], asyncpg.Pool], *, route: bool,
                 delivery_pool: Callable[[], DeliveryPool | None] | None, node_name: str,
                 request_timeout: float, max_request_timeout: float | None = None,
                 interval: float = 0.1, route_batch: int = 100,
                 route_timeout: float = 1.0) -> None:
        super().__init__(interval=interval, name="Poller")
        self._pool = pool
        self._route = route
        self._delivery_pool = delivery_pool
        self._node = node_name
        # An endpoint's own timeout_s applies up to the maximum; the lease follows it.
        self._timeout = request_timeout
        self._max_timeout = max(max_request_timeout or request_timeout, request_timeout)
        self._router = Router(pool, batch=route_batch, budget=route_timeout)
        self.claimed = 0
        self._backlog = False  # the last claim took all it could: more may be due
        self._aged_credit = 0.0  # what AGED_SHARE owes the longest-waiting, across claims
        self._failures = 0

    async def tick(self) -> None:
        try:
            more = False
            if self._route:
                more = await self._router.route()
            if self._delivery_pool is not None:
                more = await self._claim() or more
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._failures += 1
            if self._failures == 1 or self._failures % 20 == 0:
                log.warning("poll skipped (%d in a row): %s", self._failures, exc)
            return
        if self._failures:
            log.info("polling resumed after %d failed ticks", self._failures)
            self._failures = 0
        if more:
            self.wake()

    @property
    def routed(self) -> int:
        """Events this Poller routed (read by tests and the node)."""
        return self._router.routed

    async def terminate(self, reason: BaseException | None) -> None:
        await self._router.stop()
        await super().terminate(reason)

    def next_delay(self) -> float:
        # While the database is away: back off up to 5 s instead of spinning.
        if self._failures:
            return min(5.0, self.interval * 2.0 ** min(self._failures, 10))
        return super().next_delay()

    def capacity_freed(self) -> None:
        """Called as attempts finish and outcomes are recorded: claim again if work is
        waiting and enough room came back (a quarter of the pool, or half of one
        endpoint's cap when the last claim was held back by caps): one claim, not one
        per worker."""
        pool = self._delivery_pool() if self._backlog and self._delivery_pool else None
        if pool is None:
            return
        enough = min(pool.size // 4, pool.max_per_endpoint // 2)
        if pool.free_slots() >= max(1, enough):
            self.wake()

    async def _claim(self) -> bool:
        """Claims due deliveries for the free workers; True when the pool was filled."""
        pool = self._delivery_pool() if self._delivery_pool is not None else None
        if pool is None:
            return False
        free = pool.free_slots()
        if free == 0:
            return False
        async with self._pool().acquire() as conn:
            held = await conn.fetch(queries.HELD_ENDPOINTS)
            # Endpoints at their concurrency cap here are left to the next claim, so a
            # slow receiver does not take every worker from the others.
            busy, rooms, full = pool.claim_rooms()
            excluded = [r["id"] for r in held] + full
            rows = await conn.fetch(queries.CLAIM_DELIVERIES, free, self._timeout, self._node,
                                    excluded, [r["id"] for r in held if r["open_for_one"]],
                                    busy, rooms, pool.max_per_endpoint, self._max_timeout,
                                    self._aged(free))
        for row in rows:
            pool.submit(Claimed(_job(row), row["rate_limit_per_second"]))
        self.claimed += len(rows)
        metrics.DELIVERIES_CLAIMED.inc(len(rows))
        # More may be due when the claim took all it could: every free slot, or an
        # endpoint's whole room (its cap on this node).
        self._backlog = len(rows) == free or _filled_a_room(rows, busy, rooms,
                                                            pool.max_per_endpoint)
        return False


    def _aged(self, free: int) -> int:
        """How many of a claim of `free` go to the longest-waiting: AGED_SHARE of all
        claimed, counted across claims, so small claims do not round it up to all."""
        self._aged_credit = min(self._aged_credit + free * AGED_SHARE, float(free))
        share = int(self._aged_credit)
        self._aged_credit -= share
        return share


def _filled_a_room(rows: list[Any], busy: list[str], rooms: list[int], cap: int) -> bool:
    room = dict(zip(busy, rooms, strict=True))
    taken: dict[str, int] = {}
    for row in rows:
        endpoint = row["endpoint_id"]
        taken[endpoint] = taken.get(endpoint, 0) + 1
    return any(count >= room.get(endpoint, cap) for endpoint, count in taken.items())


def _job(row: Any) -> Job:
    secrets = (row["secret"],) + ((row["previous_secret"],) if row["previous_secret"] else ())
    headers = orjson.loads(row["headers"]) if row["headers"] else {}
    statuses = row["success_statuses"]
    return Job(delivery_id=row["id"], event_id=row["event_id"], event_type=row["type"],
               payload=row["payload"], created_at=row["created_at"],
               endpoint_id=row["endpoint_id"], url=row["url"], secrets=secrets,
               attempt=row["attempts"], lease=row["lease_token"], org_id=row["org_id"],
               timeout=row["timeout_s"], headers=tuple(headers.items()),
               success_statuses=frozenset(statuses) if statuses else None)
