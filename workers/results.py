"""ResultWriter: records delivery outcomes in batches, and what follows from them.

Outcomes queue in the mailbox; each round takes what is there (up to 500) and, in one
transaction: finishes the deliveries whose lease the outcome was made under (fenced by
the claim's token), and for those only stores the attempts, folds them into each
endpoint's health (circuit breaker, 410 disables) and settles the events whose
deliveries are all final. Up to two such writes overlap.

Every effect hangs on the fenced update, so a write applied twice (its commit was lost
to the client, then retried) or made for a lease that expired, was rescued or cancelled
changes nothing: no second attempt row, health change or alert. Such outcomes are
counted as discarded.

A transient database failure (triggerd_sql.faults) is retried with backoff, in a task of
its own, for up to `write_timeout`. Any other failure is a poison row: the batch is
split until the row is found, the rest commit at once, and the row is logged at ERROR,
counted, and left to its lease (the Rescuer requeues it; rescues are bounded).

After each commit: the time from each delivered event's acceptance to its receiver's
answer is observed (triggerd_ingest_to_delivered_seconds) and every recorded attempt
goes to the AttemptLog (a line per failure, sampled successes).

Messages: `Outcome`. Restart: permanent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from supervisor import Actor
from supervisor.throttle import Throttle
from triggerd_sql.faults import is_transient
from workers import metrics, queries
from workers.alerter import Alert
from workers.attempt_log import AttemptLog
from workers.breaker import Breaker, HealthRow
from workers.deliverer import Outcome, safe_text
from workers.pool import DEFERRED, INTERRUPTED
from workers.schedule import RetrySchedule

log = logging.getLogger(__name__)

MAX_BATCH = 500
LINGER_S = 0.002
ERROR_LIMIT = 2_000  # characters of an error message kept
GONE_REASON = "the receiver answered 410 Gone"
FINAL = frozenset({"delivered", "dead_letter"})


@dataclass(frozen=True, slots=True)
class Decision:
    """What an outcome asks of its delivery (the fenced update may still refuse it)."""

    status: str
    next_at: datetime | None
    refund: int
    rescue: int = 0


class ResultWriter(Actor[Outcome]):
    def __init__(self, pool: Callable[[], asyncpg.Pool], node_name: str,
                 schedule: RetrySchedule, breaker: Breaker,
                 alert: Callable[[Alert], None], *, write_timeout: float = 300.0,
                 recorded: Callable[[], None] = lambda: None, concurrency: int = 2,
                 max_rescues: int = 3, log_delivered_sample: float = 0.0) -> None:
        super().__init__(name="ResultWriter", mailbox_size=10_000)
        self._pool = pool
        self._node = node_name
        self._schedule = schedule
        self._breaker = breaker
        self._alert = alert
        self._write_timeout = write_timeout
        self._max_rescues = max_rescues
        self.written = 0
        self._unrecorded = 0
        self._recorded = recorded
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._warn = Throttle(10.0)
        self._attempt_log = AttemptLog(node_name, log_delivered_sample)

    def report(self, outcome: Outcome) -> None:
        """Called by the pool's workers; never blocks them."""
        try:
            self.send_nowait(outcome)
        except asyncio.QueueFull:
            # Only while PostgreSQL has been away for long: the lease expires and the
            # Rescuer requeues the delivery.
            metrics.OUTCOMES_DROPPED_BY["queue_full"].inc()
            self._warn.log(log, logging.WARNING, "outcome of delivery %d dropped: result "
                           "queue full", outcome.job.delivery_id)
            return
        self._unrecorded += 1

    def unrecorded(self) -> int:
        """Outcomes received and not yet written or given up (their leases are held)."""
        return self._unrecorded

    async def handle(self, message: Outcome) -> None:
        await self._slots.acquire()
        # Outcomes of one claim arrive within a few ms of each other: a commit costs the
        # same for one or fifty, so give the rest a moment to join this one.
        await asyncio.sleep(LINGER_S)
        batch = [message]
        while len(batch) < MAX_BATCH and not self.mailbox.empty():
            batch.append(self.mailbox.get_nowait())
        # A task of its own: cancelling the actor does not cut a write short.
        task = asyncio.create_task(self._record(batch), name="ResultWriter.write")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._written(done, len(batch)))

    def _written(self, task: asyncio.Task[None], count: int) -> None:
        self._tasks.discard(task)
        self._unrecorded -= count
        self._slots.release()
        self._recorded()  # their leases are settled: the pool has room again

    async def terminate(self, reason: BaseException | None) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks)
        rest: list[Outcome] = []
        while not self.mailbox.empty():
            rest.append(self.mailbox.get_nowait())
        if rest:
            await self._record(rest)
            self._unrecorded -= len(rest)

    async def _record(self, batch: list[Outcome]) -> None:
        """Writes `batch`; a poison row is isolated by halving, the rest is written."""
        try:
            await self._write_with_retry(batch)
        except Exception as exc:  # not transient: find the row PostgreSQL refuses
            metrics.WRITE_FAILED["refused"].inc()
            if len(batch) > 1:
                middle = len(batch) // 2
                await self._record(batch[:middle])
                await self._record(batch[middle:])
                return
            job = batch[0].job
            metrics.OUTCOMES_DROPPED_BY["refused"].inc()
            log.error("outcome of delivery %d (event %s, endpoint %s, attempt %d) refused by "
                      "the database, left to its lease: %s: %s", job.delivery_id,
                      job.event_id, job.endpoint_id, job.attempt, type(exc).__name__, exc)

    async def _write_with_retry(self, batch: list[Outcome]) -> None:
        deadline = time.monotonic() + self._write_timeout
        delay = 0.05
        while True:
            try:
                await self._write(batch)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                metrics.WRITE_FAILED["transient"].inc()
                if time.monotonic() + delay > deadline:
                    metrics.OUTCOMES_DROPPED_BY["gave_up"].inc(len(batch))
                    log.error("dropping %d outcomes after %s: their leases will expire and "
                              "the Rescuer requeues them", len(batch), exc)
                    return
                self._warn.log(log, logging.WARNING, "writing %d outcomes failed (%s); "
                               "retrying", len(batch), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _write(self, batch: list[Outcome]) -> None:
        started = time.perf_counter()
        now = datetime.now(UTC)
        decisions = [self._decide(o, now) for o in batch]
        errors = [_clean(o.error, ERROR_LIMIT) for o in batch]
        async with self._pool().acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                queries.FINISH_DELIVERIES,
                [o.job.delivery_id for o in batch], self._max_rescues,
                [o.job.lease for o in batch], [d.status for d in decisions],
                [d.next_at for d in decisions], [o.status for o in batch], errors,
                [d.refund for d in decisions], [d.rescue for d in decisions])
            status = {r["id"]: r["status"] for r in rows}
            done = [o for o in batch if o.job.delivery_id in status]
            attempts = [o for o in done if o.kind not in (DEFERRED, INTERRUPTED)]
            alerts = await self._attempts(conn, attempts) if attempts else []
            final = sorted({r["event_id"] for r in rows if r["status"] in FINAL})
            if final:
                await conn.execute(queries.SETTLE_EVENTS, final)
        self.written += len(done)
        if len(done) < len(batch):
            metrics.OUTCOMES_DISCARDED.inc(len(batch) - len(done))
        self._after_commit(done, status, alerts)
        next_at = {o.job.delivery_id: d.next_at for o, d in zip(batch, decisions, strict=True)}
        self._observe(attempts, status, next_at)
        log.info("recorded outcomes=%d attempts=%d discarded=%d took_ms=%.1f", len(done),
                 len(attempts), len(batch) - len(done), (time.perf_counter() - started) * 1000)

    def _after_commit(self, done: list[Outcome], status: dict[int, str],
                      alerts: list[Alert]) -> None:
        metrics.BREAKER_OPENED.inc(sum(1 for a in alerts if a.kind == "breaker_opened"))
        for outcome in done:
            if status[outcome.job.delivery_id] == "dead_letter":
                metrics.DEAD_LETTERS.inc()
                alerts.append(Alert.dead_letter(outcome.job.endpoint_id, outcome.job.url,
                                                outcome.job.event_id, outcome.error))
        for alert in alerts:
            self._alert(alert)

    def _observe(self, attempts: list[Outcome], status: dict[int, str],
                 next_at: dict[int, datetime | None]) -> None:
        """Times the deliveries made and logs the attempts, once they are recorded."""
        for outcome in attempts:
            job = outcome.job
            latency = None
            if outcome.ok:
                answered = outcome.answered_at or time.time()
                latency = max(0.0, answered - job.created_at.timestamp())
                metrics.INGEST_TO_DELIVERED_SECONDS.observe(latency)
            self._attempt_log.recorded(outcome, status[job.delivery_id],
                                       next_at[job.delivery_id], latency)

    async def _attempts(self, conn: asyncpg.Connection, attempts: list[Outcome]) -> list[Alert]:
        """Stores the attempts made under a current lease and folds them into health."""
        jobs = [o.job for o in attempts]
        await conn.execute(
            queries.INSERT_ATTEMPTS,
            [j.delivery_id for j in jobs], [j.attempt for j in jobs],
            [o.status for o in attempts], [o.duration_ms for o in attempts],
            [_clean(o.error, ERROR_LIMIT) for o in attempts],
            [_clean(o.body, None) for o in attempts], [j.org_id for j in jobs],
            [j.endpoint_id for j in jobs], [j.event_type for j in jobs],
            # a success's latency is measured from the event's acceptance (in SQL)
            [o.job.created_at if o.ok else None for o in attempts])
        return await self._endpoints(conn, attempts)

    def _decide(self, outcome: Outcome, now: datetime) -> Decision:
        job = outcome.job
        back = "failed" if job.attempt > 1 else "pending"
        if outcome.kind == DEFERRED:
            return Decision(back, now + timedelta(seconds=outcome.retry_after or 0.0), 1)
        if outcome.kind == INTERRUPTED:
            return Decision(back, now, 1, rescue=1)
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
        ids = sorted(per_endpoint)
        rows = await conn.fetch(queries.ENDPOINT_HEALTH, ids, [per_endpoint[i][0] for i in ids],
                                [per_endpoint[i][1] for i in ids])
        health = [_health(r) for r in rows]
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


def _health(row: Any) -> HealthRow:
    return HealthRow(row["id"], row["url"], row["consecutive_failures"],
                     row["breaker_cooldown_s"], bool(row["breaker_due"]), row["success"])


def _clean(text: str | None, limit: int | None) -> str | None:
    """Text PostgreSQL stores whatever it holds: no NUL, no lone surrogate, bounded."""
    if text is None:
        return None
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return safe_text(text.encode("utf-8", "replace").decode("utf-8"))
