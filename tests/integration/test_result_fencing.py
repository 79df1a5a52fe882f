"""The ResultWriter and Rescuer against a real PostgreSQL: fenced leases, idempotent
writes, bounded rescues and exact settlement under concurrent writers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from workers import queries
from workers.alerter import Alert
from workers.breaker import Breaker
from workers.deliverer import Job, Outcome
from workers.poller import _job
from workers.pool import INTERRUPTED
from workers.rescuer import Rescuer
from workers.results import ResultWriter
from workers.schedule import RetrySchedule


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=8) as opened:
        yield opened


async def _org(db: asyncpg.Connection, endpoints: int = 1) -> tuple[uuid.UUID, list[uuid.UUID]]:
    org = uuid.uuid4()
    await db.execute("INSERT INTO organizations (id, name, tier) VALUES ($1, 'o', 'free')", org)
    ids = [uuid.uuid4() for _ in range(endpoints)]
    for endpoint in ids:
        await db.execute("INSERT INTO endpoints (id, org_id, url, secret) "
                         "VALUES ($1, $2, 'http://127.0.0.1:9/', 'whsec_eA==')", endpoint, org)
    return org, ids


async def _events(db: asyncpg.Connection, org: uuid.UUID, count: int) -> None:
    """`count` events, routed to every endpoint of the organization."""
    await db.execute("INSERT INTO events (id, org_id, type, payload) "
                     "SELECT gen_random_uuid(), $1, 't', '{}' FROM generate_series(1, $2)",
                     org, count)
    await db.execute(queries.ROUTE_EVENTS, count, [])


async def _claim(pool: asyncpg.Pool, count: int, node: str = "n1") -> list[Job]:
    rows = await pool.fetch(queries.CLAIM_DELIVERIES, count, 30.0, node, [], [], [], [], count,
                            60.0, 0)
    return [_job(r) for r in rows]


def _writer(pool: asyncpg.Pool, alerts: list[Alert] | None = None,
            threshold: int = 0) -> ResultWriter:
    sink = alerts if alerts is not None else []
    return ResultWriter(lambda: pool, "n1", RetrySchedule((60.0,)), Breaker(threshold, 30.0),
                        sink.append, write_timeout=5.0)


def _outcome(job: Job, kind: str = "delivered", status: int | None = 200,
             body: str | None = "ok") -> Outcome:
    error = None if kind == "delivered" else f"{kind} {status}"
    return Outcome(job, kind, status, 3.0, error, body, None)


async def _expire_and_rescue(db: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    await db.execute("UPDATE deliveries SET locked_until = now() - interval '1 second' "
                     "WHERE status = 'in_flight'")
    await Rescuer(lambda: pool, lambda _: None, max_rescues=3).tick()


async def test_a_write_applied_twice_changes_nothing_more(db: asyncpg.Connection,
                                                          pool: asyncpg.Pool) -> None:
    org, _ = await _org(db)
    await _events(db, org, 1)
    [job] = await _claim(pool, 1)
    alerts: list[Alert] = []
    writer = _writer(pool, alerts, threshold=1)
    failed = _outcome(job, "http_error", 500, "boom")
    await writer._write([failed])
    await writer._write([failed])  # as if the first commit's answer had been lost
    assert await db.fetchval("SELECT count(*) FROM delivery_attempts") == 1
    assert await db.fetchval("SELECT consecutive_failures FROM endpoints") == 1
    assert [a.kind for a in alerts] == ["breaker_opened"]
    row = await db.fetchrow("SELECT status, attempts, lease_token FROM deliveries")
    assert (row["status"], row["attempts"], row["lease_token"]) == ("failed", 1, None)


async def test_an_outcome_of_an_expired_lease_is_discarded(db: asyncpg.Connection,
                                                           pool: asyncpg.Pool) -> None:
    org, _ = await _org(db)
    await _events(db, org, 1)
    [first] = await _claim(pool, 1)
    await _expire_and_rescue(db, pool)
    [second] = await _claim(pool, 1)  # the same node claims it again: a new token
    assert (first.delivery_id, first.attempt) == (second.delivery_id, second.attempt)
    assert first.lease != second.lease
    writer = _writer(pool)
    await writer._write([_outcome(first)])  # late: its lease was rescued
    assert await db.fetchval("SELECT status FROM deliveries") == "in_flight"
    assert await db.fetchval("SELECT count(*) FROM delivery_attempts") == 0
    await writer._write([_outcome(second)])
    assert await db.fetchval("SELECT status FROM deliveries") == "delivered"
    assert await db.fetchval("SELECT count(*) FROM delivery_attempts") == 1
    assert await db.fetchval("SELECT status FROM events") == "delivered"


async def test_rescues_are_bounded(db: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    org, _ = await _org(db)
    await _events(db, org, 1)
    for expected in ("pending", "pending"):
        await _claim(pool, 1)
        await _expire_and_rescue(db, pool)
        row = await db.fetchrow("SELECT status, attempts, rescues FROM deliveries")
        assert (row["status"], row["attempts"]) == (expected, 0)  # the attempt is refunded
    [job] = await _claim(pool, 1)
    # The third time its attempt is cut short (the pool was stopped), it is given up.
    await _writer(pool)._write([Outcome(job, INTERRUPTED, None, 0.0, "attempt interrupted",
                                        None, 0.0)])
    row = await db.fetchrow("SELECT status, rescues, last_error FROM deliveries")
    assert (row["status"], row["rescues"]) == ("dead_letter", 3)
    assert row["last_error"].startswith("rescued 3 times")
    assert await db.fetchval("SELECT status FROM events") == "failed"
    assert await _claim(pool, 1) == []


async def test_settlement_is_exact_under_concurrent_writers(db: asyncpg.Connection,
                                                            pool: asyncpg.Pool) -> None:
    """Each event has two deliveries whose outcomes are written by different concurrent
    transactions; every event must end settled, round after round."""
    org, endpoints = await _org(db, endpoints=2)
    writer = _writer(pool)
    for _ in range(25):
        await _events(db, org, 40)
        jobs = await _claim(pool, 80)
        assert len(jobs) == 80
        by_endpoint: dict[str, list[Job]] = {str(e): [] for e in endpoints}
        for job in jobs:
            by_endpoint[job.endpoint_id].append(job)
        first, second = (sorted(j, key=lambda job: job.event_id) for j in by_endpoint.values())
        batches = [first[:20], second[:20], first[20:], second[20:]]
        await asyncio.gather(*(writer._write([_outcome(j) for j in b]) for b in batches))
        pending = await db.fetchval("SELECT count(*) FROM events WHERE status = 'pending'")
        assert pending == 0
    assert await db.fetchval("SELECT count(*) FROM events WHERE status = 'delivered'") == 1000


async def test_a_refused_row_is_isolated_and_the_rest_commit(db: asyncpg.Connection,
                                                             pool: asyncpg.Pool) -> None:
    org, _ = await _org(db)
    await _events(db, org, 9)
    jobs = await _claim(pool, 9)
    # A constraint of the test's own stands for any permanent refusal of one row.
    await db.execute("ALTER TABLE delivery_attempts ADD CONSTRAINT no_poison "
                     "CHECK (response_body IS DISTINCT FROM 'poison')")
    outcomes = [_outcome(j, body="poison" if i == 4 else "ok") for i, j in enumerate(jobs)]
    writer = _writer(pool)
    await writer._record(outcomes)
    states: dict[Any, int] = {r["status"]: r["n"] for r in await db.fetch(
        "SELECT status, count(*) AS n FROM deliveries GROUP BY status")}
    assert states == {"delivered": 8, "in_flight": 1}  # the refused one waits for its lease
    assert await db.fetchval("SELECT count(*) FROM delivery_attempts") == 8


async def test_a_claim_takes_no_more_than_each_endpoint_has_room_for(
        db: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    org, (first, second) = await _org(db, endpoints=2)
    await _events(db, org, 100)  # 100 due deliveries to each endpoint
    rows = await pool.fetch(queries.CLAIM_DELIVERIES, 50, 30.0, "n1", [], [],
                            [first], [3], 10, 60.0, 0)  # `first` has room for 3 more, others 10
    taken = [str(r["endpoint_id"]) for r in rows]
    assert (taken.count(str(first)), taken.count(str(second))) == (3, 10)
    leftover = await db.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'")
    assert leftover == 200 - 13
