"""The queue's per-minute samples (sql/011, workers/sampler.py) on a real PostgreSQL:
one row a minute whatever the number of nodes, bounded per organization, retention,
and the console's live JSON serving them within the viewer's scope only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ingestor import queries_console as qc
from tests.browser import Browsers
from tests.integration.console_helpers import TOKEN, Client, console_node, new_org, sign_in
from workers import sampler
from workers.sampler import Sampler

FLEET = "SELECT minute, depth, due FROM queue_samples WHERE org_id IS NULL ORDER BY minute"


@pytest.fixture
async def pools(database_url: str) -> AsyncIterator[list[asyncpg.Pool]]:
    """Two pools, as two nodes of a fleet have."""
    made = [await asyncpg.create_pool(database_url, min_size=1, max_size=2) for _ in range(2)]
    yield made
    for pool in made:
        await pool.close()


async def within_a_minute(db: asyncpg.Connection, seconds: float = 10.0) -> None:
    """Waits, when needed, so the next `seconds` fall within one minute of the server's."""
    now = float(await db.fetchval("SELECT extract(second FROM now())"))
    if now > 60 - seconds:
        await asyncio.sleep(60.2 - now)


async def waiting(db: asyncpg.Connection, count: int, *, due: int) -> uuid.UUID:
    """An organization with `count` waiting deliveries, `due` of them due now."""
    org, ep = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO organizations (id, name, tier) VALUES ($1, 'o', 'free')", org)
    await db.execute("INSERT INTO endpoints (id, org_id, url, secret) "
                     "VALUES ($1, $2, 'http://example.com/', 'whsec_eA==')", ep, org)
    await db.execute("INSERT INTO events (id, org_id, type, payload) SELECT gen_random_uuid(),"
                     " $1, 't', '{}' FROM generate_series(1, $2)", org, count)
    await db.execute("INSERT INTO deliveries (event_id, endpoint_id, org_id, next_attempt_at)"
                     " SELECT id, $1, org_id, CASE WHEN row_number() OVER (ORDER BY id) <= $3"
                     " THEN now() - interval '30 seconds' ELSE now() + interval '1 hour' END"
                     " FROM events WHERE org_id = $2", ep, org, due)
    return org


async def test_one_node_of_the_fleet_writes_each_minute(
        db: asyncpg.Connection, pools: list[asyncpg.Pool]) -> None:
    busy = await waiting(db, 3, due=2)
    quiet = await waiting(db, 1, due=0)
    one, two = Sampler(lambda: pools[0]), Sampler(lambda: pools[1])
    await within_a_minute(db)
    await one.tick()
    await two.tick()
    assert (one.written, two.written) == (1, 0)
    [fleet] = await db.fetch(FLEET)
    assert (fleet["depth"], fleet["due"]) == (4, 2)
    rows = {r["org_id"]: r for r in await db.fetch(
        "SELECT org_id, depth, due, oldest_due_age_s FROM queue_samples WHERE org_id IS NOT NULL")}
    assert set(rows) == {busy, quiet}
    assert (rows[busy]["depth"], rows[busy]["due"]) == (3, 2)
    assert 29 <= rows[busy]["oldest_due_age_s"] < 60
    assert (rows[quiet]["depth"], rows[quiet]["due"], rows[quiet]["oldest_due_age_s"]) == (1, 0, 0)
    # Ticking together in a fresh minute: one of them gets the lock, the other skips.
    await db.execute("DELETE FROM queue_samples")
    await within_a_minute(db)
    await asyncio.gather(one.tick(), two.tick())
    assert one.written + two.written == 2 and len(await db.fetch(FLEET)) == 1
    # While another node holds the lock, nothing is written.
    await db.execute("DELETE FROM queue_samples")
    written = one.written
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock($1)", sampler.LOCK_KEY)
        await one.tick()
    assert await db.fetch(FLEET) == [] and one.skipped == 0 and one.written == written


async def test_only_the_busiest_organizations_are_sampled(
        db: asyncpg.Connection, pools: list[asyncpg.Pool],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "MAX_ORGS", 1)
    busy = await waiting(db, 5, due=5)
    await waiting(db, 2, due=2)
    await Sampler(lambda: pools[0]).tick()
    rows = await db.fetch("SELECT org_id, depth FROM queue_samples ORDER BY depth")
    assert [(r["org_id"], r["depth"]) for r in rows] == [(busy, 5), (None, 7)]


async def test_retention_deletes_old_samples_in_batches(
        db: asyncpg.Connection, pools: list[asyncpg.Pool],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "PRUNE_BATCH", 3)
    org = uuid.uuid4()
    await db.execute(
        "INSERT INTO queue_samples (minute, org_id, depth, due, oldest_due_age_s)"
        " SELECT date_trunc('minute', now()) - $1::interval - n * interval '1 minute',"
        " o, 1, 1, 1 FROM generate_series(1, 2) AS n, unnest(ARRAY[NULL, $2::uuid]) AS o",
        timedelta(days=2), org)  # 4 older than 2 days
    await db.execute("INSERT INTO queue_samples (minute, org_id, depth, due, oldest_due_age_s)"
                     " VALUES (date_trunc('minute', now()) - interval '47 hours', $1, 1, 1, 1)",
                     org)
    one = Sampler(lambda: pools[0])
    await within_a_minute(db)
    await one.tick()
    assert one.pruned == 3
    await one.tick()  # the minute is sampled already; the rest of the old ones go
    assert one.pruned == 4 and one.written == 1
    left = await db.fetch("SELECT minute > now() - interval '2 days' AS recent"
                          " FROM queue_samples")
    assert len(left) == 2 and all(r["recent"] for r in left)  # 47 hours old, and this minute


async def test_a_database_away_skips_the_sample() -> None:
    def away() -> asyncpg.Pool:
        raise ConnectionError("database is restarting")
    one = Sampler(away)
    await one.tick()
    assert (one.skipped, one.written) == (1, 0)


async def insert_samples(db: asyncpg.Connection, minutes_ago: int,
                         depths: dict[uuid.UUID | None, int]) -> None:
    for org, depth in depths.items():
        await db.execute("INSERT INTO queue_samples (minute, org_id, depth, due, oldest_due_age_s)"
                         " VALUES (date_trunc('minute', now()) - $1 * interval '1 minute',"
                         " $2, $3::int, $3::int, $3::int)", minutes_ago, org, depth)


def old_depths(live: dict[str, Any]) -> list[int]:
    """The depths of the samples of more than 3 minutes ago (the node samples now too)."""
    recent = datetime.fromisoformat(live["at"]) - timedelta(minutes=3)
    return [s["depth"] for s in live["queue_samples"]
            if datetime.fromisoformat(s["minute"]) < recent]


async def test_console_serves_the_samples_of_its_scope_only(
        database_url: str, db: asyncpg.Connection) -> None:
    async with console_node(database_url) as (_, api):
        first_key, _ = await new_org(api, "first"), await new_org(api, "second")
        named = "SELECT id FROM organizations WHERE name = $1"
        first, second = await db.fetchval(named, "first"), await db.fetchval(named, "second")
        await insert_samples(db, 90, {None: 500, first: 400, second: 300})  # over an hour ago
        await insert_samples(db, 6, {None: 100, first: 7, second: 9})
        await insert_samples(db, 5, {None: 50, second: 3})
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        _, fleet, _ = await api.call("GET", "/dashboard/api/live", headers=bearer)
        assert old_depths(fleet) == [100, 50]
        _, picked, _ = await api.call("GET", f"/dashboard/api/live?org={second}", headers=bearer)
        assert old_depths(picked) == [9, 3]
        async with Client(api) as tenant:
            assert (await tenant.login(first_key)).status == 303
            status_, own = await tenant.get("/dashboard/api/live")
            assert status_ == 200 and old_depths(own) == [7, 0]
            # A tenant naming another organization still sees its own.
            _, other = await tenant.get(f"/dashboard/api/live?org={second}")
            assert old_depths(other) == [7, 0]
        for live in (own, other):
            values = {v for s in live["queue_samples"]
                      for v in (s["depth"], s["due"], s["oldest_due_age_s"])}
            assert not values & {100, 50, 9, 3, 500, 400, 300}


async def test_the_queue_chart_draws_the_stored_history(
        database_url: str, db: asyncpg.Connection, browser: Browsers) -> None:
    async with console_node(database_url) as (_, api):
        for minutes_ago in range(30, 0, -1):
            await insert_samples(db, minutes_ago, {None: minutes_ago})
        page = await browser.open(api.base)
        await sign_in(page, TOKEN)
        line = page.page.locator("#chart-queue polyline").first
        for _ in range(100):
            points = (await line.get_attribute("points") or "").split() \
                if await line.count() else []
            if len(points) >= 31:
                break
            await asyncio.sleep(0.1)
        assert len(points) >= 31  # 30 stored minutes (and perhaps this one), then now
        assert page.foreign_requests() == [] and page.errors == []


async def test_reading_an_hour_walks_the_scope_index(db: asyncpg.Connection) -> None:
    org = uuid.uuid4()
    await db.execute(
        "INSERT INTO queue_samples (minute, org_id, depth, due, oldest_due_age_s)"
        " SELECT date_trunc('minute', now()) - n * interval '1 minute', o, 1, 1, 1"
        " FROM generate_series(1, 2880) AS n,"
        " unnest(ARRAY[NULL, $1::uuid, gen_random_uuid(), gen_random_uuid()]) AS o", org)
    await db.execute("ANALYZE queue_samples")
    rows = await db.fetch("EXPLAIN " + qc.QUEUE_SAMPLES, org,
                          await db.fetchval("SELECT now() - interval '1 hour'"))
    plan = "\n".join(r[0] for r in rows)
    assert "Seq Scan" not in plan, plan
