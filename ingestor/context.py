"""What the routes share: the pool, the writer, keys, limits and the dedup cache.

The node builds one `Ingest` per ingest subtree; the routes reach the current
EventWriter through `writer()`, so a restarted writer is picked up at once. Each event
gets a deadline `commit_timeout` after it is accepted; what its request is told when
it is not committed by then, or not at all, is decided in `outcomes`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web
from cachetools import TTLCache
from prometheus_client.metrics_core import Metric

from ingestor import metrics
from ingestor.auth import KeyStore, Org
from ingestor.errors import ApiError
from ingestor.flush import flush
from ingestor.http import unavailable
from ingestor.ids import uuid7
from ingestor.outcomes import CommitTimeout, Failure, batch_error, failure, single_error
from ingestor.pending import DedupKey, Pending, Written
from ingestor.ratelimit import Decision, RateLimiter
from ingestor.validation import EventIn
from ingestor.writer import EventWriter


@dataclass(slots=True)
class Ingest:
    pool: Callable[[], asyncpg.Pool]
    writer: Callable[[], EventWriter | None]
    keys: KeyStore
    dedup: TTLCache[DedupKey, str]
    limiter: RateLimiter
    admin_token: str | None = None
    # Who may act as an operator without the token, create organizations, read /metrics:
    # see auth.is_admin and the routes of keys and the node.
    loopback_only: bool = True
    open_signup: bool = False
    metrics_public: bool = False
    commit_timeout: float = 5.0
    healthy: Callable[[], bool] = lambda: True
    allow_private_targets: bool = False
    # Whether a source of the `none` kind (no verification) may be created and receive.
    allow_unverified_sources: bool = False
    # The most an endpoint's own timeout_s may be (the delivering nodes' maximum).
    max_request_timeout: float = 60.0
    loop: asyncio.AbstractEventLoop | None = None
    # For /metrics and /dashboard, from the node: its name, its tree (each supervisor
    # with its children's states) and its own gauges (tree, writer, pool).
    node_name: str = ""
    tree_status: Callable[[], list[dict[str, Any]]] = lambda: []
    node_metrics: Callable[[], Iterable[Metric]] = lambda: ()
    # Batch flushes run as tasks of their own: a request that stops waiting (its commit
    # timeout) leaves its flush to finish and answer truthfully, never cancelled mid-way.
    _batches: set[asyncio.Task[None]] = field(default_factory=set)

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
        loop = self._loop()
        return Pending(uuid7(), org.id, event.type, event.payload, event.dedup_id,
                       loop.create_future(), loop.time() + self.commit_timeout,
                       source_id=event.source_id, provider_id=event.provider_id,
                       headers=event.headers)

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
        return await self._outcome(pending)

    async def submit_many(self, org: Org, events: list[EventIn]) -> list[Written]:
        """Commits a batch in one statement of its own (it is already a group)."""
        outcomes: list[Written | Failure | None] = [self._known(org, e) for e in events]
        todo = [(i, self._pending(org, e)) for i, e in enumerate(events) if outcomes[i] is None]
        if todo:
            task = asyncio.create_task(flush(self.pool, self.dedup, [p for _, p in todo]),
                                       name="Ingest.batch")
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        for i, pending in todo:
            outcomes[i] = await self._wait(pending)
        done = [o for o in outcomes if o is not None]
        written = [o for o in done if isinstance(o, Written)]
        if len(written) < len(done):
            raise batch_error(done, [e.dedup_id for e in events])
        return written

    async def _outcome(self, pending: Pending) -> Written:
        outcome = await self._wait(pending)
        if isinstance(outcome, Failure):
            raise single_error(outcome)
        return outcome

    async def _wait(self, pending: Pending) -> Written | Failure:
        """The commit of `pending`, or what its failure means, by its deadline at most."""
        # A bare timer rather than asyncio.timeout(): this runs once per event.
        timer = self._loop().call_at(pending.deadline, _expire, pending.reply)
        try:
            return await pending.reply
        except Exception as exc:  # the reply's failure, classified for the client
            return failure(pending, exc)
        finally:
            timer.cancel()


# Where the app keeps the node's Ingest (ingestor.app.create_app).
INGEST = web.AppKey("ingest", Ingest)


def _expire(reply: asyncio.Future[Written]) -> None:
    if not reply.done():
        reply.set_exception(CommitTimeout())
