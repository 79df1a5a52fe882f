"""The queue claims stay index walks however deep the queue is."""

from __future__ import annotations

import uuid

import asyncpg

from workers import queries


async def _fill(db: asyncpg.Connection, count: int) -> None:
    org, endpoint = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO organizations (id, name, tier) VALUES ($1, 'o', 'free')", org)
    await db.execute("INSERT INTO endpoints (id, org_id, url, secret) "
                     "VALUES ($1, $2, 'http://example.com/', 'whsec_eA==')", endpoint, org)
    await db.execute("INSERT INTO events (id, org_id, type, payload) "
                     "SELECT gen_random_uuid(), $1, 't', '{}' FROM generate_series(1, $2)",
                     org, count)
    await db.execute("INSERT INTO deliveries (event_id, endpoint_id, org_id) "
                     "SELECT id, $1, $2 FROM events", endpoint, org)
    await db.execute("ANALYZE")


async def test_delivery_claim_walks_the_due_index(db: asyncpg.Connection) -> None:
    await _fill(db, 20_000)
    tr = db.transaction()
    await tr.start()
    try:
        rows = await db.fetch("EXPLAIN (ANALYZE) " + queries.CLAIM_DELIVERIES,
                              50, 15.0, "node", [], [], [], [], 50, 60.0, 10)
    finally:
        await tr.rollback()
    plan = "\n".join(r[0] for r in rows)
    assert "Index Scan using deliveries_due" in plan, plan
    assert "Seq Scan on deliveries" not in plan, plan


async def test_routing_claim_walks_the_unrouted_index(db: asyncpg.Connection) -> None:
    await _fill(db, 20_000)
    tr = db.transaction()
    await tr.start()
    try:
        rows = await db.fetch("EXPLAIN (ANALYZE) " + queries.ROUTE_EVENTS, 100, [])
    finally:
        await tr.rollback()
    plan = "\n".join(r[0] for r in rows)
    assert "events_unrouted" in plan, plan
    assert "Seq Scan on events" not in plan, plan


async def test_queue_health_reads_bounded_index_ranges(db: asyncpg.Connection) -> None:
    """An organization's long delivered history is not read: only its open deliveries,
    its latest deliveries up to the cap, and its dead letters."""
    from ingestor.queries_delivery import QUEUE_HEALTH

    await _fill(db, 20_000)
    await db.execute("UPDATE deliveries SET status = 'delivered' WHERE id % 100 <> 0")
    await db.execute("INSERT INTO delivery_attempts (delivery_id, attempt, duration_ms) "
                     "SELECT id, 1, 1.0 FROM deliveries")
    await db.execute("ANALYZE")
    org = await db.fetchval("SELECT id FROM organizations")
    # On a table this small a sequential scan may be cheapest; what must hold is that
    # every part of the query has an index path, which it keeps on a table of any size.
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        rows = await db.fetch("EXPLAIN (ANALYZE) " + QUEUE_HEALTH, org, 1000)
    plan = "\n".join(r[0] for r in rows)
    assert "Seq Scan on deliveries" not in plan, plan
    assert "Seq Scan on delivery_attempts" not in plan, plan
    assert "deliveries_endpoint_open" in plan, plan
