"""Router: routes committed events into deliveries for the Poller, within a time budget
per statement, so that one organization's filters never stall the others' routing.

Filters are evaluated by PostgreSQL inside the routing statement (queries.ROUTE_EVENTS),
and a filter over a large payload can take seconds (a `$in` of a hundred values over an
array of a hundred thousand elements). Every routing statement therefore runs under
`budget` (TRIGGERD_ROUTE_TIMEOUT, 1 s). When a batch overruns it, its events are routed
one at a time until the one that overruns alone is found; that event is routed to every
endpoint its type matches, without its filters (a delivery too many rather than one
lost; the event's `routing_note` says so) and its organization moves to the slow lane
for `slow_for` seconds: its events are left out of the batches and routed one at a
time, each within the budget, by a task of their own beside the Poller's ticks, so
they delay only that organization.

Not an actor: the Poller owns it and calls `route()` from its tick. Restart: with the
Poller (the slow lane is learned again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from uuid import UUID

import asyncpg

from triggerd_sql.faults import is_transient
from workers import metrics, queries

log = logging.getLogger(__name__)

MAX_ROUTE_BATCHES = 50  # per tick, so claiming is never starved by a deep backlog
SLOW_LANE_BATCH = 100  # events the slow lane routes before it looks at its lane again


class Router:
    def __init__(self, pool: Callable[[], asyncpg.Pool], *, batch: int = 100,
                 budget: float = 1.0, slow_for: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._batch = batch
        self._budget_ms = str(max(1, int(budget * 1000)))
        self._slow_for = slow_for
        self._clock = clock
        self._slow: dict[UUID, float] = {}  # organization -> in the slow lane until
        self._lane: asyncio.Task[None] | None = None
        self.routed = 0

    def slow_lane(self) -> list[UUID]:
        """The organizations whose events are routed one at a time now."""
        now = self._clock()
        for org, until in list(self._slow.items()):
            if until <= now:
                del self._slow[org]
        return list(self._slow)

    async def route(self) -> bool:
        """Routes up to MAX_ROUTE_BATCHES batches; True when more may be waiting. Raises
        what the slow lane's task raised (the Poller's supervisor then sees it)."""
        self._check_lane()
        started = time.perf_counter()
        events = deliveries = 0
        full = False
        for _ in range(MAX_ROUTE_BATCHES):
            routed = await self._batch_or_isolate()
            if routed is None:
                continue  # the batch overran: its events were routed one at a time
            events, deliveries = events + routed[0], deliveries + routed[1]
            full = routed[0] >= self._batch
            if not full:
                break
        if events:
            self.routed += events
            log.info("routed events=%d deliveries=%d took_ms=%.1f", events, deliveries,
                     (time.perf_counter() - started) * 1000)
        if self._slow and self._lane is None:
            self._lane = asyncio.create_task(self._run_lane(), name="Router.slow_lane")


        return full

    async def stop(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.cancel()
            await asyncio.gather(lane, return_exceptions=True)

    def _check_lane(self) -> None:
        lane = self._lane
        if lane is not None and lane.done():
            self._lane = None
            if not lane.cancelled() and lane.exception() is not None:
                raise lane.exception()  # type: ignore[misc]

    async def _batch_or_isolate(self) -> tuple[int, int] | None:
        """One batch within the budget; None when it overran and was routed one by one."""
        try:
            async with self._pool().acquire() as conn, conn.transaction():
                # A lost commit leaves the events unrouted: routing is simply redone.
                await conn.execute("SET LOCAL synchronous_commit = off")
                await conn.execute(queries.SET_STATEMENT_TIMEOUT, self._budget_ms)
                row = await conn.fetchrow(queries.ROUTE_EVENTS, self._batch, self.slow_lane())
        except asyncpg.QueryCanceledError:
            for _ in range(self._batch):
                if not await self._route_one(None):
                    break
            return None
        _count(row)
        return row["events"], row["deliveries"]

    async def _run_lane(self) -> None:
        try:
            while True:
                lane = self.slow_lane()
                if not lane:
                    return
                for _ in range(SLOW_LANE_BATCH):
                    if not await self._route_one(lane):
                        break
                else:
                    continue
                await asyncio.sleep(0.1)  # the lane is empty for now; look again soon
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("slow-lane routing paused: %s", exc)  # the next tick restarts it

    async def _route_one(self, orgs: list[UUID] | None) -> bool:
        """Routes the next unrouted event (of `orgs`, or of any organization outside the
        slow lane) alone, within the budget, or without its filters when it overruns.
        False when there was none to take."""
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            event = await conn.fetchrow(queries.NEXT_EVENT, orgs,
                                        [] if orgs is not None else self.slow_lane())
            if event is None:
                return False
            try:
                async with conn.transaction():  # a savepoint: the event stays locked
                    await conn.execute(queries.SET_STATEMENT_TIMEOUT, self._budget_ms)
                    row = await conn.fetchrow(queries.ROUTE_ONE, event["id"])
            except asyncpg.QueryCanceledError:
                row = await conn.fetchrow(queries.ROUTE_UNFILTERED, event["id"], _note(
                    self._budget_ms))
                self._overran(event["org_id"], event["id"])
        _count(row)
        self.routed += row["events"]
        return True

    def _overran(self, org: UUID, event: UUID) -> None:
        metrics.FILTER_OVERRUNS.inc()
        if org not in self._slow:
            log.warning("filters of organization %s took longer than %s ms on event %s: "
                        "routed to every endpoint its type matches, and the "
                        "organization's events are routed one at a time for %.0f s",
                        org, self._budget_ms, event, self._slow_for,
                        extra={"org_id": str(org), "event_id": str(event)})
        self._slow[org] = self._clock() + self._slow_for


def _note(budget_ms: str) -> str:
    return (f"filters not evaluated: they took longer than the routing budget "
            f"({budget_ms} ms); delivered to every endpoint the type matches")


def _count(row: asyncpg.Record) -> None:
    metrics.EVENTS_ROUTED.inc(row["events"])
    metrics.DELIVERIES_CREATED.inc(row["deliveries"])
