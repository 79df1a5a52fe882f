"""An ordered endpoint receives events in acceptance order across nodes: when A's 202
came before B was sent, A is delivered first, whichever nodes took and routed them."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

import asyncpg
from aiohttp import web

from tests.integration.test_delivery import endpoint, running
from tests.receiver import Received, receiver


async def _quick(_: Received, __: int) -> web.StreamResponse:
    await asyncio.sleep(0.002)
    return web.Response()


async def test_ordered_endpoint_follows_acceptance_order_across_two_nodes(
        database_url: str, db: asyncpg.Connection) -> None:
    count = 80
    async with receiver() as rx, AsyncExitStack() as stack:
        # Two nodes, each ingesting and routing (one event per routing statement, so the
        # two routers interleave) and delivering.
        apis = [(await stack.enter_async_context(running(
            database_url, route_batch=1, poll_interval=0.01)))[1] for _ in range(2)]
        key = await apis[0].new_org()
        await endpoint(apis[0], key, rx.url("/ordered", _quick), ordered=True)
        accepted: list[str] = []
        for i in range(count):
            api = apis[i % 2]
            status, body, _ = await api.call("POST", "/api/events", key,
                                             json={"type": "t", "payload": {"i": i}})
            assert status == 202, body
            accepted.append(str(body["id"]))
        await rx.wait_for(lambda: len(rx.at("/ordered")) >= count, timeout=30.0)
        received = [json.loads(r.body)["id"] for r in rx.at("/ordered")]
        assert received == accepted
        assert max(rx.max_in_flight.values()) == 1
