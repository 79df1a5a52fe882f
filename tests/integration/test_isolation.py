"""Isolation by default: an endpoint that never answers holds at most
TRIGGERD_ENDPOINT_CONCURRENCY of a node's workers, and another organization's endpoint
keeps receiving meanwhile. Behaviour only: how fast the healthy endpoint is served
beside a hanging one is measured in the benchmarks (benchmarks/measure_isolation.py)."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import web

from supervisor.node.config import Config
from tests.conftest import Api
from tests.integration.test_delivery import endpoint, post, running
from tests.receiver import Behaviour, Received, Receiver, receiver

# Long enough that no hanging attempt ends while the test looks, short enough that a
# regression (the healthy deliveries waiting for the hanging ones) fails it quickly.
HANG_TIMEOUT = 8.0
HANGING_EVENTS = 60  # more than POOL_SIZE: uncapped, they would take every worker
HEALTHY_EVENTS = 40


async def _deliveries(db: asyncpg.Connection, endpoint_id: str) -> list[tuple[str, int]]:
    rows = await db.fetch("SELECT status, attempts FROM deliveries WHERE endpoint_id = $1",
                          endpoint_id)
    return [(r["status"], r["attempts"]) for r in rows]


async def _until_delivered(db: asyncpg.Connection, endpoint_id: str, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + HANG_TIMEOUT / 2
    while (states := await _deliveries(db, endpoint_id)) != [("delivered", 1)] * count:
        assert asyncio.get_running_loop().time() < deadline, states
        await asyncio.sleep(0.05)


async def test_a_hanging_endpoint_holds_at_most_its_cap_while_another_flows(
        database_url: str, db: asyncpg.Connection) -> None:
    defaults = Config()
    cap = defaults.endpoint_concurrency
    # The default leaves most of the pool to the other endpoints.
    assert cap <= defaults.pool_size // 4, (cap, defaults.pool_size)
    released = asyncio.Event()

    async def never_answers(_: Received, __: int) -> web.StreamResponse:
        # Bounded, and ended by the test before the node stops (see `finally`).
        await asyncio.wait_for(released.wait(), 2 * HANG_TIMEOUT)
        return web.Response(status=503)

    async with receiver() as hanging, receiver() as healthy, \
            running(database_url, request_timeout=HANG_TIMEOUT) as (node, api):
        assert (node.config.pool_size, node.config.endpoint_concurrency) == (
            defaults.pool_size, cap)
        try:
            await _hang_then_flow(api, db, hanging, healthy, never_answers, cap)
        finally:
            released.set()  # so the node's attempts end now, not at the timeout


async def _hang_then_flow(api: Api, db: asyncpg.Connection, hanging: Receiver,
                          healthy: Receiver, never_answers: Behaviour, cap: int) -> None:
    loop = asyncio.get_running_loop()
    h_key, g_key = await api.new_org("hangs"), await api.new_org("healthy")
    await endpoint(api, h_key, hanging.url("/hang", never_answers))
    g_endpoint = await endpoint(api, g_key, healthy.url("/ok"))
    for i in range(HANGING_EVENTS):
        await post(api, h_key, i=i)
    await hanging.wait_for(lambda: hanging.in_flight["/hang"] >= cap, timeout=5)

    started = loop.time()  # every hanging attempt began before this
    for i in range(HEALTHY_EVENTS):
        await post(api, g_key, i=i)
    await healthy.wait_for(lambda: len(healthy.at("/ok")) >= HEALTHY_EVENTS,
                           timeout=HANG_TIMEOUT / 2)
    await _until_delivered(db, g_endpoint["id"], HEALTHY_EVENTS)
    assert loop.time() - started < HANG_TIMEOUT / 2 + 1

    # All of it happened while the hanging endpoint was still held, never over its cap,
    # though most workers were idle and more of its deliveries were due.
    assert hanging.in_flight["/hang"] == cap
    assert hanging.max_in_flight["/hang"] == cap
    assert len(hanging.at("/hang")) == cap
    received = [r.headers["webhook-id"] for r in healthy.at("/ok")]
    assert len(received) == len(set(received)) == HEALTHY_EVENTS  # each once
