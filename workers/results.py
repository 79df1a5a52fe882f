"""ResultWriter: records delivery outcomes in batches, and what follows from them.

Outcomes queue in the mailbox; each round takes what is there (up to 500) and, in
one transaction: finishes the deliveries this node still leases, stores the attempts,
folds the outcomes into each endpoint's health (circuit breaker, 410 disables) and
settles events whose deliveries are all final; up to two such writes overlap. Writes
retry with backoff, in tasks of their own, for up to five minutes, so neither a PostgreSQL restart nor a shutdown
drops an outcome: a write that lands once PostgreSQL is back avoids a duplicate, and one
whose lease was rescued meanwhile is ignored (the delivery is no longer ours).

Messages: `Outcome`. Restart: permanent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import asyncpg

from supervisor import Actor
from workers import metrics, queries
from workers.alerter import Alert
from workers.breaker import Breaker, HealthRow
from workers.deliverer import Outcome
from workers.pool import DEFERRED
from workers.schedule import RetrySchedule

log = logging.getLogger(__name__)

MAX_BATCH = 500
LINGER_S = 0.002
GONE_REASON = "the receiver answered 410 Gone"


@dataclass(frozen=True, slots=True)
class Decision:
    """What an outcome does to its delivery."""

    status: str
    next_at: datetime | None
    refund: int


class ResultWriter(Actor[Outcome]):
    def __init__(self, pool: Callable[[], asyncpg.Pool], node_name: str,
                 schedule: RetrySchedule, breaker: Breaker,
                 alert: Callable[[Alert], None], *, write_timeout: float = 300.0,
                 recorded: Callable[[], None] = lambda: None, concurrency: int = 2) -> None:
        super().__init__(name="ResultWriter", mailbox_size=10_000)
        self._pool = pool
        self._node = node_name
        self._schedule = schedule
        self._breaker = breaker
        self._alert = alert
        self._write_timeout = write_timeout
        self.written = 0
        self._writing = 0
        self._recorded = recorded
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, outcome: Outcome) -> None:
        """Called by the pool's workers; never blocks them."""
        try:
            self.send_nowait(outcome)
        except asyncio.QueueFull:
            # Only while PostgreSQL has been away for long: the lease expires and the
            # Rescuer requeues the delivery.
            log.warning("outcome of delivery %d dropped: result queue full",
                        outcome.job.delivery_id)

    def unrecorded(self) -> int:
        """Outcomes received but not yet committed (their leases are still held)."""
        return self.mailbox.qsize() + self._writing

    async def handle(self, message: Outcome) -> None:
        await self._slots.acquire()
        # Outcomes of one claim arrive within a few ms of each other: a commit costs the
        # same for one or fifty, so give the rest a moment to join this one.
        await asyncio.sleep(LINGER_S)
        batch = [message]
        while len(batch) < MAX_BATCH and not self.mailbox.empty():
            batch.append(self.mailbox.get_nowait())
        self._writing += len(batch)
        # A task of its own: cancelling the actor does not cut a write short.
        task = asyncio.create_task(self._write_with_retry(batch), name="ResultWriter.write")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._written(done, len(batch)))

    def _written(self, task: asyncio.Task[None], count: int) -> None:
        self._tasks.discard(task)
        self._writing -= count
        self._slots.release()
        self._recorded()  # their leases are settled: the pool has room again

    async def terminate(self, reason: BaseException | None) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks)
        rest: list[Outcome] = []
        while not self.mailbox.empty():
            rest.append(self.mailbox.get_nowait())
        if rest:
            await self._write_with_retry(rest)

    async def _write_with_retry(self, batch: list[Outcome]) -> None:
        deadline = time.monotonic() + self._write_timeout
        delay = 0.05
        while True:
            try:
                await self._write(batch)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if time.monotonic() + delay > deadline:
                    log.error("dropping %d outcomes after %s: their leases will expire and "
                              "the Rescuer requeues them", len(batch), exc)
                    return
                if delay >= 1.0 or delay == 0.05:
                    log.warning("writing %d outcomes failed (%s); retrying", len(batch), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _write(self, batch: list[Outcome]) -> None:
        started = time.perf_counter()
        now = datetime.now(timezone.utc)
        decisions = [self._decide(o, now) for o in batch]
        attempts = [(o, d) for o, d in zip(batch, decisions) if o.kind != DEFERRED]
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute(
                queries.FINISH_DELIVERIES,
                [o.job.delivery_id for o in batch], [o.job.attempt for o in batch],
                [d.status for d in decisions], [d.next_at for d in decisions],
                [o.status for o in batch], [o.error for o in batch], self._node,
                [d.refund for d in decisions])
            if attempts:
                await conn.execute(
                    queries.INSERT_ATTEMPTS,
                    [o.job.delivery_id for o, _ in attempts], [o.job.attempt for o, _ in attempts],
                    [o.status for o, _ in attempts], [o.duration_ms for o, _ in attempts],
                    [o.error for o, _ in attempts], [o.body for o, _ in attempts])
                alerts = await self._endpoints(conn, [o for o, _ in attempts])
            else:
                alerts = []
            final = [o.job.event_id for o, d in zip(batch, decisions)
                     if d.status in ("delivered", "dead_letter")]
            if final:
                await conn.execute(queries.SETTLE_EVENTS, final)
        self.written += len(batch)
        metrics.BREAKER_OPENED.inc(sum(1 for a in alerts if a.kind == "breaker_opened"))
        for outcome, decision in zip(batch, decisions):
            if decision.status == "dead_letter":
                metrics.DEAD_LETTERS.inc()
                alerts.append(Alert.dead_letter(outcome.job.endpoint_id, outcome.job.url,
                                                outcome.job.event_id, outcome.error))
        for alert in alerts:
            self._alert(alert)
        log.info("recorded outcomes=%d attempts=%d took_ms=%.1f", len(batch), len(attempts),
                 (time.perf_counter() - started) * 1000)

    def _decide(self, outcome: Outcome, now: datetime) -> Decision:
        job = outcome.job
        if outcome.kind == DEFERRED:
            back = "failed" if job.attempt > 1 else "pending"
            return Decision(back, now + timedelta(seconds=outcome.retry_after or 0.0), 1)
        if outcome.ok:
            return Decision("delivered", None, 0)
        if outcome.gone:
            return Decision("dead_letter", None, 0)
        delay = self._schedule.retry_delay(job.attempt, status=outcome.status,
                                           timed_out=outcome.kind == "timeout",
                                           retry_after=outcome.retry_after)
        if delay is None:
            return Decision("dead_letter", None, 0)
        return Decision("failed", now + timedelta(seconds=delay), 0)

    async def _endpoints(self, conn: asyncpg.Connection, outcomes: list[Outcome]) -> list[Alert]:
        """Folds outcomes into endpoint health; opens/closes breakers; disables on 410."""
        per_endpoint: dict[str, tuple[bool, int]] = {}
        gone: dict[str, str] = {}
        for outcome in outcomes:  # in arrival order: a success resets the count
            endpoint = outcome.job.endpoint_id
            success, failures = per_endpoint.get(endpoint, (False, 0))
            per_endpoint[endpoint] = (True, 0) if outcome.ok else (success, failures + 1)
            if outcome.gone:
                gone[endpoint] = GONE_REASON
        ids = list(per_endpoint)
        rows = await conn.fetch(queries.ENDPOINT_HEALTH, ids,
                                [per_endpoint[i][0] for i in ids], [per_endpoint[i][1] for i in ids])
        health = [HealthRow(r["id"], r["url"], r["consecutive_failures"], r["breaker_cooldown_s"],
                            bool(r["breaker_due"]), r["success"]) for r in rows]
        changes, alerts = self._breaker.decide(health)
        if changes:
            await conn.execute(queries.SET_BREAKERS, list(changes), list(changes.values()))
            opened = [i for i, cooldown in changes.items() if cooldown is not None]
            if opened:
                await conn.execute(queries.HOLD_DELIVERIES, opened)
        if gone:
            disabled = await conn.fetch(queries.DISABLE_ENDPOINTS, list(gone), list(gone.values()))
            alerts += [Alert.disabled(r["id"], r["url"], r["disabled_reason"]) for r in disabled]
        return alerts
