"""Failure behaviour: SIGKILL after 202s, PostgreSQL going away, a saturated writer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from supervisor.node.postgres import EmbeddedPostgres
from supervisor.node.tree import Node
from tests.conftest import Api, free_port, node_config

ROOT = Path(__file__).resolve().parents[2]


async def _wait_ready(api: Api, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "node exited during start"
        try:
            status, _, _ = await api.call("GET", "/health/ready")
            if status == 200:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("node did not become ready")


def _spawn(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port),
           "TRIGGERD_ROLES": "ingest", "TRIGGERD_LOG_FORMAT": "json"}
    return subprocess.Popen([sys.executable, "-m", "supervisor.node.cli", "serve"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


@pytest.mark.slow
async def test_sigkill_after_202s_loses_nothing(database_url: str, db: asyncpg.Connection) -> None:
    port = free_port()
    proc = _spawn(database_url, port)
    acknowledged: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{port}", session)
            await _wait_ready(api, proc)
            key = await api.new_org()

            async def client(n: int) -> None:
                for i in range(10_000):
                    try:
                        status, body, _ = await api.call(
                            "POST", "/api/events", key,
                            json={"type": "burst", "payload": {"client": n, "i": i}})
                    except (TimeoutError, aiohttp.ClientError):
                        return
                    if status == 202:
                        acknowledged.append(str(body["id"]))

            clients = [asyncio.create_task(client(n)) for n in range(64)]
            while len(acknowledged) < 1500:
                await asyncio.sleep(0.005)
            proc.send_signal(signal.SIGKILL)  # requests are still in flight
            await asyncio.gather(*clients)
    finally:
        proc.kill()
        proc.wait()
    stored = {str(r["id"]) for r in await db.fetch("SELECT id FROM events")}
    missing = set(acknowledged) - stored
    assert len(acknowledged) >= 1500 and not missing, f"{len(missing)} acknowledged events lost"

    port = free_port()
    proc = _spawn(database_url, port)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{port}", session)
            await _wait_ready(api, proc)
            for event_id in acknowledged[-20:]:
                status, _, _ = await api.call("GET", f"/api/events/{event_id}", key)
                assert status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


@pytest.mark.slow
async def test_postgres_outage_answers_503_then_recovers(own_server: EmbeddedPostgres) -> None:
    node = Node(node_config(own_server.dsn))
    await node.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{node.config.port}", session)
            key = await api.new_org()
            event = {"type": "t", "payload": {}}
            assert (await api.call("POST", "/api/events", key, json=event))[0] == 202
            await asyncio.to_thread(own_server.kill)
            for _ in range(20):
                started = time.monotonic()
                status, body, resp = await api.call("POST", "/api/events", key, json=event)
                assert status == 503, body
                assert resp.headers["Retry-After"] and body["error"]
                assert time.monotonic() - started < 0.5
            status, body, _ = await api.call("GET", "/health/ready")
            assert status == 503 and body["checks"]["database"] != "ok"
            await asyncio.to_thread(own_server.restart_server)
            deadline = time.monotonic() + 20
            while True:
                status, body, _ = await api.call("POST", "/api/events", key, json=event)
                if status == 202:
                    break
                assert status == 503 and time.monotonic() < deadline, body
                await asyncio.sleep(0.1)
            assert (await api.call("GET", "/health/ready"))[0] == 200
    finally:
        await node.root.stop(10)
    assert not node.root.restarts, "the tree should ride out the outage without restarts"


async def test_saturated_writer_answers_503_at_once(database_url: str,
                                                   db: asyncpg.Connection) -> None:
    node = Node(node_config(database_url, writer_queue=2, writer_concurrency=1))
    await node.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{node.config.port}", session)
            key = await api.new_org()
            event = {"type": "t", "payload": {}}
            blocker = db.transaction()
            await blocker.start()
            await db.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # stalls every flush
            stuck = []
            for _ in range(4):  # one flushing, one waiting for the flush slot, two queued
                stuck.append(asyncio.create_task(api.call("POST", "/api/events", key, json=event)))
                await asyncio.sleep(0.1)
            started = time.monotonic()
            status, body, resp = await api.call("POST", "/api/events", key, json=event)
            assert status == 503 and body["error"] == "Ingest saturated"
            assert resp.headers["Retry-After"] and time.monotonic() - started < 0.5
            await blocker.rollback()
            answers = await asyncio.gather(*stuck)
            assert [status for status, _, _ in answers] == [202] * 4
            assert await db.fetchval("SELECT count(*) FROM events") == 4
    finally:
        await node.root.stop(10)
