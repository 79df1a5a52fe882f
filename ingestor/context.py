"""What the routes share: the pool, the writer, keys, limits and the dedup cache.

The node builds one `Ingest` per ingest subtree; the routes reach the current
EventWriter through `writer()`, so a restarted writer is picked up at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from cachetools import TTLCache
from prometheus_client.metrics_core import Metric

from ingestor import metrics
from ingestor.auth import KeyStore, Org
from ingestor.http import ApiError, unavailable
from ingestor.ids import uuid7
from ingestor.ratelimit import Decision, RateLimiter
from ingestor.validation import EventIn
from ingestor.writer import (DedupKey, EventRejected, EventWriter, Pending,
                             WriterUnavailable, Written, flush)


@dataclass(slots=True)
class Ingest:
    pool: Callable[[], asyncpg.Pool]
    writer: Callable[[], EventWriter | None]
    keys: KeyStore
    dedup: TTLCache[DedupKey, str]
    limiter: RateLimiter
    admin_token: str | None = None
    commit_timeout: float = 5.0
    healthy: Callable[[], bool] = lambda: True
    allow_private_targets: bool = False
    loop: asyncio.AbstractEventLoop | None = None
    # For /metrics and /dashboard, from the node: its name, its tree (each supervisor
    # with its children's states) and its own gauges (tree, writer, pool).
    node_name: str = ""
    tree_status: Callable[[], list[dict[str, Any]]] = lambda: []
    node_metrics: Callable[[], Iterable[Metric]] = lambda: ()

    async def admit(self, request: web.Request) -> tuple[Org, Decision]:
        """Authenticates the caller and charges one request against its rate limit."""
        org = await self.keys.authenticate(request)
        return org, self.charge(org)

    def charge(self, org: Org, cost: int = 1) -> Decision:
        """Charges `cost` against the organization's limit, or refuses with 429."""
        decision = self.limiter.hit(org.id, org.rate_limit_per_minute, cost)
        if not decision.allowed:
            metrics.REJECTED["rate_limited"].inc()
            raise ApiError(429, "Rate limit exceeded", limit=decision.limit,
                           retry_after=decision.retry_after,
                           headers={**decision.headers(), "Retry-After": str(decision.retry_after)})
        return decision

    def _pending(self, org: Org, event: EventIn) -> Pending:
        return Pending(uuid7(), org.id, event.type, event.payload, event.dedup_id,
                       self._loop().create_future())

    def _loop(self) -> asyncio.AbstractEventLoop:
        # Cached: asyncio.get_running_loop() costs a getpid() system call on each call.
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        return self.loop

    def _known(self, org: Org, event: EventIn) -> Written | None:
        if event.dedup_id is None:
            return None
        original = self.dedup.get((org.id, event.dedup_id))
        if original is None:
            return None
        metrics.EVENTS_DUPLICATE.inc()
        return Written(original, True)

    async def submit(self, org: Org, event: EventIn) -> Written:
        """Commits one event through the group-commit writer."""
        known = self._known(org, event)
        if known is not None:
            return known
        writer = self.writer()
        if writer is None:
            metrics.REJECTED["unavailable"].inc()
            raise unavailable("Ingest is restarting")
        pending = self._pending(org, event)
        try:
            writer.send_nowait(pending)
        except asyncio.QueueFull:
            metrics.REJECTED["saturated"].inc()
            raise unavailable("Ingest saturated") from None
        return await self._outcome(pending.reply)

    async def submit_many(self, org: Org, events: list[EventIn]) -> list[Written]:
        """Commits a batch in one statement of its own (it is already a group)."""
        known = [self._known(org, e) for e in events]
        todo = [(i, self._pending(org, e)) for i, e in enumerate(events) if known[i] is None]
        if todo:
            try:
                await asyncio.wait_for(flush(self.pool(), self.dedup, [p for _, p in todo]),
                                       self.commit_timeout)
            except asyncio.TimeoutError:
                metrics.REJECTED["commit_timeout"].inc()
                raise unavailable("Commit timed out") from None
        for i, pending in todo:
            known[i] = await self._outcome(pending.reply)
        return [w for w in known if w is not None]

    async def _outcome(self, reply: asyncio.Future[Written]) -> Written:
        # A bare timer rather than asyncio.timeout(): this runs once per event.
        timer = self._loop().call_later(self.commit_timeout, _expire, reply)
        try:
            return await reply
        except CommitTimeout:
            metrics.REJECTED["commit_timeout"].inc()
            raise unavailable("Commit timed out") from None
        except WriterUnavailable:
            metrics.REJECTED["unavailable"].inc()
            raise unavailable("Database unavailable") from None
        except EventRejected as exc:
            raise ApiError(400, f"Event refused by the database: {exc}") from None
        finally:
            timer.cancel()


class CommitTimeout(Exception):
    """The commit did not complete in time; its outcome is unknown to the client."""


def _expire(reply: asyncio.Future[Written]) -> None:
    if not reply.done():
        reply.set_exception(CommitTimeout())
