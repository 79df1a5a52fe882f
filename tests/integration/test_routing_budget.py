"""One organization's filters that take seconds over a large payload never stall the
others' routing: the statement that overruns the budget is split, the event is routed
without its filters (and says so), and that organization's events go one at a time."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg

from tests.integration.test_delivery import endpoint, post, running
from tests.receiver import receiver

# Seconds of PostgreSQL's time over a payload of 120,000 array elements.
HEAVY = {"$or": [{"data": {"a": {"$in": list(range(1_000, 1_100))}}},
                 {"data": {"a": {"$in": list(range(2_000, 2_100))}}}]}


async def _delivered(db: asyncpg.Connection, event_id: str) -> bool:
    return bool(await db.fetchval(
        "SELECT count(*) FROM deliveries WHERE event_id = $1 AND status = 'delivered'",
        event_id))


async def _wait(db: asyncpg.Connection, event_ids: list[str], timeout: float) -> float:
    started = time.monotonic()
    while not all([await _delivered(db, e) for e in event_ids]):
        assert time.monotonic() - started < timeout, event_ids
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_an_overrunning_filter_delays_only_its_organization(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url, route_timeout=0.2) as (_, api):
        heavy_key, other_key = await api.new_org("heavy"), await api.new_org("other")
        await endpoint(api, heavy_key, rx.url("/heavy"), filter=HEAVY)
        await endpoint(api, other_key, rx.url("/other"))
        body: dict[str, Any] = {"type": "t", "payload": {"a": [1] * 120_000}}
        status, answer, _ = await api.call("POST", "/api/events", heavy_key, json=body)
        assert status == 202, answer
        poison = str(answer["id"])
        others = [await post(api, other_key, n=n) for n in range(5)]
        # the other organization's events flow (the poison costs about one budget)
        assert await _wait(db, others, timeout=10) < 5
        # the poison event went everywhere its type matches, and says why
        await _wait(db, [poison], timeout=10)
        note = await db.fetchval("SELECT routing_note FROM events WHERE id = $1", poison)
        assert note is not None and "filters not evaluated" in note
        _, shown, _ = await api.call("GET", f"/api/events/{poison}", heavy_key)
        assert shown["routing_note"] == note
        # the heavy organization's small events are still filtered, one at a time
        match = await post(api, heavy_key, a=1_000)
        miss = await post(api, heavy_key, a=7)
        await _wait(db, [match], timeout=10)
        await asyncio.sleep(0.3)
        assert not await db.fetchval("SELECT count(*) FROM deliveries WHERE event_id = $1",
                                     miss)
        assert await db.fetchval("SELECT routed_at IS NOT NULL FROM events WHERE id = $1",
                                 miss)
        arrived = {json.loads(r.body)["id"] for r in rx.at("/heavy")}
        assert arrived == {poison, match}
        assert await db.fetchval("SELECT routing_note FROM events WHERE id = $1",
                                 match) is None
