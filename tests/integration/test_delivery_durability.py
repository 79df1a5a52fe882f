"""Delivery under failure: a node SIGKILLed mid-run, and two nodes sharing one database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from supervisor.node.tree import Node
from tests.conftest import Api, free_port
from tests.integration.test_delivery import delivery_config, endpoint
from tests.integration.test_durability import _wait_ready
from tests.receiver import receiver

ROOT = Path(__file__).resolve().parents[2]


def _spawn(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port),
           "TRIGGERD_ALLOW_PRIVATE_TARGETS": "true", "TRIGGERD_REQUEST_TIMEOUT": "2",
           "TRIGGERD_RESCUE_INTERVAL": "0.5", "TRIGGERD_RETRY_SCHEDULE": "200ms,400ms,800ms",
           "TRIGGERD_LOG_FORMAT": "json", "TRIGGERD_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "supervisor.node.cli", "serve"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


async def _post_batches(api: Api, key: str, count: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 100):
        events = [{"type": "order.created", "payload": {"i": i}}
                  for i in range(start, min(count, start + 100))]
        status, body, _ = await api.call("POST", "/api/events/batch", key,
                                         json={"events": events})
        assert status == 202, body
        ids += [r["id"] for r in body["results"]]
    return ids


async def _slow_ok(_: Any, __: int) -> web.StreamResponse:
    await asyncio.sleep(0.01)
    return web.Response()


@pytest.mark.slow
async def test_sigkill_mid_deliveries_bounds_duplicates(database_url: str,
                                                        db: asyncpg.Connection) -> None:
    async with receiver() as rx, aiohttp.ClientSession() as session:
        port = free_port()
        proc = _spawn(database_url, port)
        try:
            api = Api(f"http://127.0.0.1:{port}", session)
            await _wait_ready(api, proc)
            key = await api.new_org()
            await endpoint(api, key, rx.url("/hook", _slow_ok))
            ids = await _post_batches(api, key, 1000)
            await rx.wait_for(lambda: len(rx.at("/hook")) >= 300)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            proc.kill()
            proc.wait()
        await asyncio.sleep(0.1)  # requests the dead node had sent are answered by now
        in_flight = {str(r["event_id"]) for r in await db.fetch(
            "SELECT event_id FROM deliveries WHERE status = 'in_flight'")}
        before = dict(rx.per_event)

        port = free_port()
        proc = _spawn(database_url, port)
        try:
            api = Api(f"http://127.0.0.1:{port}", session)
            await _wait_ready(api, proc)
            await _wait_all_delivered(db, 1000)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    assert {e for (_, e) in rx.per_event} == set(ids)
    duplicated = {event for (_, event), n in rx.per_event.items() if n > 1}
    assert duplicated <= in_flight, "a delivery recorded as done was sent again"
    assert len(in_flight) <= 50  # POOL_SIZE: a node never holds more leases than that
    assert all(n == 1 for (_, event), n in before.items() if event not in in_flight)


async def _wait_all_delivered(db: asyncpg.Connection, count: int, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await db.fetchval(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered'") < count:
        assert asyncio.get_running_loop().time() < deadline, "not all delivered in time"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_two_nodes_share_the_work_without_duplicates(
        database_url: str, db: asyncpg.Connection) -> None:
    nodes = [Node(delivery_config(database_url)) for _ in range(2)]
    for node in nodes:
        await node.root.start()
    try:
        async with receiver() as rx, aiohttp.ClientSession() as session:
            apis = [Api(f"http://127.0.0.1:{n.config.port}", session) for n in nodes]
            key = await apis[0].new_org()
            await endpoint(apis[0], key, rx.url("/hook"))
            halves = await asyncio.gather(*(_post_batches(api, key, 1000) for api in apis))
            ids = set(halves[0]) | set(halves[1])
            assert len(ids) == 2000
            await rx.wait_for(lambda: len(rx.at("/hook")) >= 2000, timeout=60)
            await asyncio.sleep(0.3)
            assert len(rx.at("/hook")) == 2000
            assert {event for (_, event) in rx.per_event} == ids
            assert set(rx.per_event.values()) == {1}
        assert await db.fetchval("SELECT count(*) FROM deliveries") == 2000
        routed_by = [n.child("processing", "poller", object) for n in nodes]
        assert all(p is not None and p.routed > 0 for p in routed_by)  # type: ignore[attr-defined]
    finally:
        for node in nodes:
            await node.root.stop(10)


async def _fault_mid_delivery(server: Any, fault: Callable[[], Awaitable[None]],
                              **changes: Any) -> Node:
    """500 events flowing to a receiver; `fault` strikes PostgreSQL once 100 arrived.
    Nothing may be lost, no event stay pending, duplicates stay within the node's leases.
    Returns the (stopped) node."""
    async with receiver() as rx, aiohttp.ClientSession() as session:
        node = Node(delivery_config(server.dsn, **changes))
        await node.root.start()
        try:
            api = Api(f"http://127.0.0.1:{node.config.port}", session)
            key = await api.new_org()
            await endpoint(api, key, rx.url("/hook", _slow_ok))
            ids = await _post_batches(api, key, 500)
            await rx.wait_for(lambda: len(rx.at("/hook")) >= 100)
            await fault()
            conn = await asyncpg.connect(server.dsn)
            try:
                await _wait_all_delivered(conn, 500)
                assert await conn.fetchval(
                    "SELECT count(*) FROM events WHERE status <> 'delivered'") == 0
            finally:
                await conn.close()
            assert {e for (_, e) in rx.per_event} == set(ids)
        finally:
            await node.root.stop(10)
    duplicates = sum(n - 1 for n in rx.per_event.values())
    assert duplicates <= node.config.pool_size
    return node


@pytest.mark.slow
async def test_postgres_restart_mid_delivery_loses_nothing(own_server: Any) -> None:
    async def restart() -> None:
        await asyncio.to_thread(own_server.kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_server.restart_server)

    node = await _fault_mid_delivery(own_server, restart)
    assert node.root.restarts == 0, "the tree rides out a PostgreSQL restart"


@pytest.mark.slow
async def test_frozen_postgres_mid_delivery_loses_nothing(own_server: Any) -> None:
    """Every PostgreSQL process stopped (SIGSTOP) for longer than the statement timeouts."""
    from tests.integration.test_ingest_faults import frozen

    async def freeze() -> None:
        with frozen(own_server):
            await asyncio.sleep(6.0)

    await _fault_mid_delivery(own_server, freeze, request_timeout=2.0)
