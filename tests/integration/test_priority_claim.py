"""The delivery claim under contention: higher priority first, a fifth of every claim for
the longest-waiting, so a low priority drains behind a stream of high ones."""

from __future__ import annotations

import uuid

import asyncpg

from workers import queries


async def _endpoint(db: asyncpg.Connection, org: uuid.UUID, priority: int) -> uuid.UUID:
    endpoint = uuid.uuid4()
    await db.execute("INSERT INTO endpoints (id, org_id, url, secret, priority) "
                     "VALUES ($1, $2, 'http://example.com/', 'whsec_eA==', $3)",
                     endpoint, org, priority)
    return endpoint


async def _queue(db: asyncpg.Connection, org: uuid.UUID, endpoint: uuid.UUID, count: int,
                 age_s: float) -> None:
    """`count` due deliveries to `endpoint`, due since `age_s` seconds ago (in order)."""
    await db.execute(
        "WITH made AS (INSERT INTO events (id, org_id, type, payload, routed_at) "
        "  SELECT gen_random_uuid(), $1, 't', '{}', now() FROM generate_series(1, $3) "
        "  RETURNING id) "
        "INSERT INTO deliveries (event_id, endpoint_id, org_id, priority, next_attempt_at) "
        "SELECT made.id, ep.id, ep.org_id, ep.priority, "
        "       now() - make_interval(secs => $4) + row_number() OVER () * interval '1 ms' "
        "FROM made, endpoints ep WHERE ep.id = $2",
        org, endpoint, count, age_s)


async def _claim(db: asyncpg.Connection, free: int) -> list[asyncpg.Record]:
    rows = await db.fetch(queries.CLAIM_DELIVERIES, free, 15.0, "node", [], [], [], [], 1000,
                          60.0, free // 5)
    # hand them back at once: only the choice is under test
    await db.execute("UPDATE deliveries SET status = 'delivered' WHERE id = ANY($1::bigint[])",
                     [r["id"] for r in rows])
    return list(rows)


async def _setup(db: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    org = uuid.uuid4()
    await db.execute("INSERT INTO organizations (id, name, tier) VALUES ($1, 'o', 'free')", org)
    return org, await _endpoint(db, org, 9), await _endpoint(db, org, 2)


async def test_higher_priority_is_claimed_first_with_a_share_for_the_oldest(
        db: asyncpg.Connection) -> None:
    org, high, low = await _setup(db)
    await _queue(db, org, low, 100, age_s=60)  # waiting longer
    await _queue(db, org, high, 100, age_s=1)
    rows = await _claim(db, 10)
    taken = [r["endpoint_id"] for r in rows]
    assert len(taken) == 10
    # a fifth (2 of 10) for the longest-waiting: the low ones; the rest by priority
    assert taken.count(str(low)) == 2, taken
    assert taken.count(str(high)) == 8, taken


async def test_without_contention_priority_changes_nothing(db: asyncpg.Connection) -> None:
    org, high, low = await _setup(db)
    await _queue(db, org, low, 3, age_s=10)
    await _queue(db, org, high, 3, age_s=1)
    rows = await _claim(db, 50)
    assert sorted(r["endpoint_id"] for r in rows) == sorted([str(low)] * 3 + [str(high)] * 3)


async def test_a_low_priority_backlog_drains_behind_a_stream_of_high_ones(
        db: asyncpg.Connection) -> None:
    """Each round, more high-priority deliveries arrive than the claim can take; the low
    backlog still drains, by its share of every claim, never starved."""
    org, high, low = await _setup(db)
    await _queue(db, org, low, 40, age_s=120)
    low_claimed = 0
    for round_ in range(20):
        await _queue(db, org, high, 20, age_s=60 - round_)  # always more than a claim takes
        rows = await _claim(db, 10)
        assert len(rows) == 10
        low_claimed += sum(1 for r in rows if r["endpoint_id"] == str(low))
    assert low_claimed == 40, low_claimed
    left = await db.fetchval("SELECT count(*) FROM deliveries WHERE endpoint_id = $1 "
                             "AND status = 'pending'", low)
    assert left == 0


async def test_the_priority_walk_reads_the_priority_index(db: asyncpg.Connection) -> None:
    org, high, low = await _setup(db)
    await _queue(db, org, low, 5000, age_s=60)
    await _queue(db, org, high, 5000, age_s=1)
    await db.execute("ANALYZE")
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await db.fetch(
            "EXPLAIN (ANALYZE) " + queries.CLAIM_DELIVERIES, 50, 15.0, "node", [], [], [], [],
            50, 60.0, 10))
    assert "deliveries_due_priority" in plan, plan
    assert "Seq Scan on deliveries" not in plan, plan


async def test_priority_never_puts_one_organization_before_another(
        db: asyncpg.Connection) -> None:
    """Organization A sets 10 on a stream newer than B's waiting deliveries: A is served
    beside B, turn by turn, not ahead of it."""
    _, _, b_endpoint = await _setup(db)
    b_org = await db.fetchval("SELECT org_id FROM endpoints WHERE id = $1", b_endpoint)
    a_org = uuid.uuid4()
    await db.execute("INSERT INTO organizations (id, name, tier) VALUES ($1, 'a', 'free')",
                     a_org)
    a_endpoint = await _endpoint(db, a_org, 10)
    await _queue(db, b_org, b_endpoint, 30, age_s=60)  # priority 2, waiting
    await _queue(db, a_org, a_endpoint, 100, age_s=1)  # priority 10, newer
    rows = await _claim(db, 20)
    taken = [r["endpoint_id"] for r in rows]
    assert taken.count(str(b_endpoint)) >= 10, taken
