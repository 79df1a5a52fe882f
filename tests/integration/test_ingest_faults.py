"""Ingest under database faults: what a client is told is true.

202 means stored; a plain 503 means not stored (and never will be); a 503 whose body
says `"outcome": "unknown"` carries the event's id. Checked through the HTTP API on an
in-process node against a PostgreSQL of the test's own, which is restarted, frozen
(SIGSTOP of every server process) or made to lose a flush's connection at a chosen
moment: the flush's backend terminated while it waits on a lock (nothing committed) or
while it waits, committed, for a synchronous standby that does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY

from supervisor.node.postgres import EmbeddedPostgres
from supervisor.node.tree import Node
from tests.conftest import Api, node_config

COMMIT_TIMEOUT = 5.0
MARGIN = 3.0  # generous: answers must come within the commit timeout plus this


@dataclass
class Ledger:
    """Every answer to POST /api/events, by the marker its payload carries."""

    answers: list[tuple[tuple[int, int], int, dict[str, Any], float]] = field(default_factory=list)

    def add(self, marker: tuple[int, int], status: int, body: dict[str, Any],
            took: float) -> None:
        self.answers.append((marker, status, body, took))

    def count(self, status: int) -> int:
        return sum(1 for _, s, _, _ in self.answers if s == status)


@asynccontextmanager
async def running_node(dsn: str) -> AsyncIterator[tuple[Node, Api]]:
    node = Node(node_config(dsn, commit_timeout=COMMIT_TIMEOUT))
    await node.root.start()
    try:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield node, Api(f"http://127.0.0.1:{node.config.port}", session)
    finally:
        await node.root.stop(10)


def server_pids(server: EmbeddedPostgres) -> list[int]:
    """The postmaster (first line of postmaster.pid) and its children."""
    postmaster = int((server.cluster_dir / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                              text=True, check=False).stdout.split()
    return [postmaster, *map(int, children)]


@contextmanager
def frozen(server: EmbeddedPostgres) -> Iterator[None]:
    pids = server_pids(server)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def load(api: Api, key: str, ledger: Ledger, stop: asyncio.Event, clients: int) -> None:
    """`clients` clients posting events without dedup_id until `stop` is set."""

    async def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            started = time.monotonic()
            status, body, _ = await api.call("POST", "/api/events", key,
                                             json={"type": "fault", "payload": {"c": n, "i": i}})
            ledger.add((n, i), status, body, time.monotonic() - started)
            i += 1
            if status != 202:
                await asyncio.sleep(0.05)

    await asyncio.gather(*(client(n) for n in range(clients)))


async def slow_flushes(dsn: str) -> None:
    """Every INSERT into events takes 50 ms more, so that a fault finds flushes under way."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""
            CREATE FUNCTION test_slow_flush() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$;
            CREATE TRIGGER test_slow_flush AFTER INSERT ON events
            FOR EACH STATEMENT EXECUTE FUNCTION test_slow_flush();""")
    finally:
        await conn.close()


async def stored_markers(dsn: str) -> dict[tuple[int, int], str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id, payload->>'c' AS c, payload->>'i' AS i FROM events "
                                "WHERE type = 'fault'")
    finally:
        await conn.close()
    return {(int(r["c"]), int(r["i"])): str(r["id"]) for r in rows}


def check_accounting(ledger: Ledger, stored: dict[tuple[int, int], str]) -> None:
    """202 => stored under that id; plain 503 => not stored; unknown => carries the id."""
    for marker, status, body, _ in ledger.answers:
        assert status in (202, 503), (status, body)
        if status == 202:
            assert stored.get(marker) == body["id"], f"acknowledged event {marker} missing"
        elif body.get("outcome") == "unknown":
            assert body["id"] and body["error"].startswith("Commit outcome unknown"), body
            assert stored.get(marker, body["id"]) == body["id"]
        else:
            assert set(body) == {"error"}, body
            assert marker not in stored, f"event {marker} answered plain 503 but stored"


async def wait_accepted(api: Api, key: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        status, body, _ = await api.call("POST", "/api/events", key,
                                         json={"type": "after", "payload": {}})
        if status == 202:
            return
        assert status == 503 and time.monotonic() < deadline, body
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_postgres_restart_under_load_answers_truthfully(
        own_server: EmbeddedPostgres) -> None:
    ledger, stop = Ledger(), asyncio.Event()
    await slow_flushes(own_server.dsn)
    async with running_node(own_server.dsn) as (node, api):
        key = await api.new_org()
        clients = asyncio.create_task(load(api, key, ledger, stop, clients=16))
        while ledger.count(202) < 300:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(own_server.kill)  # flushes are in flight
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_server.restart_server)
        before = ledger.count(202)
        deadline = time.monotonic() + 20
        while ledger.count(202) < before + 100:
            assert time.monotonic() < deadline, "ingest did not recover after the restart"
            await asyncio.sleep(0.05)
        stop.set()
        await clients
        assert node.root.restarts == 0
    assert ledger.count(503) > 0, "the restart should have refused some events"
    check_accounting(ledger, await stored_markers(own_server.dsn))


@pytest.mark.slow
async def test_frozen_postgres_answers_503_in_time_then_recovers(
        own_server: EmbeddedPostgres) -> None:
    ledger, stop = Ledger(), asyncio.Event()
    await slow_flushes(own_server.dsn)
    async with running_node(own_server.dsn) as (node, api):
        key = await api.new_org()
        first = await api.call("POST", "/api/events", key, json={"type": "t", "payload": {}})
        clients = asyncio.create_task(load(api, key, ledger, stop, clients=16))
        while ledger.count(202) < 300:
            await asyncio.sleep(0.01)
        with frozen(own_server):
            frozen_at = time.monotonic()
            started = time.monotonic()
            status, body, _ = await api.call("GET", "/health/ready")
            assert status == 503 and body["checks"]["database"] != "ok", body
            assert time.monotonic() - started < MARGIN
            started = time.monotonic()
            status, body, _ = await api.call("GET", f"/api/events/{first[1]['id']}", key)
            assert status == 503 and body == {"error": "Database unavailable"}, body
            assert time.monotonic() - started < COMMIT_TIMEOUT + MARGIN
            await asyncio.sleep(max(0.0, frozen_at + COMMIT_TIMEOUT + 2 - time.monotonic()))
            during = [a for a in ledger.answers if a[1] != 202]
        await wait_accepted(api, key, within=15)
        stop.set()
        await clients
        assert node.root.restarts == 0 and node.subtrees["ingest"].restarts == 0
    assert during, "requests during the freeze should have been answered 503"
    slowest = max(took for _, status, _, took in ledger.answers)
    assert slowest < COMMIT_TIMEOUT + MARGIN, f"an answer took {slowest:.1f}s"
    await asyncio.sleep(1.0)  # a frozen backend's INSERT may commit once thawed
    check_accounting(ledger, await stored_markers(own_server.dsn))


async def _flush_backend(conn: asyncpg.Connection, wait_event: str) -> int:
    """The pid of the node's backend running the events INSERT, once it waits on
    `wait_event`."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE wait_event = $1 AND pid <> pg_backend_pid()"
            " AND query LIKE '%INSERT INTO events%'", wait_event)
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no INSERT waiting on {wait_event}")


async def _post_and_terminate(api: Api, key: str, conn: asyncpg.Connection, path: str,
                              body: dict[str, Any], wait_event: str,
                              ) -> tuple[int, dict[str, Any]]:
    answer = asyncio.create_task(api.call("POST", path, key, json=body))
    pid = await _flush_backend(conn, wait_event)
    assert await conn.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    status, reply, _ = await answer
    return status, reply


async def test_lost_connection_before_commit_answers_plain_503(
        database_url: str, db: asyncpg.Connection) -> None:
    watcher = await asyncpg.connect(database_url)  # outside the locking transaction
    try:
        async with running_node(database_url) as (_, api):
            key = await api.new_org()
            for path, body in (("/api/events", {"type": "fault", "payload": {"c": 0}}),
                               ("/api/events/batch", {"events": [
                                   {"type": "fault", "payload": {"c": i}} for i in (1, 2, 3)]})):
                async with db.transaction():
                    await db.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # the INSERT waits
                    status, reply = await _post_and_terminate(api, key, watcher, path, body,
                                                              "relation")
                assert status == 503 and reply == {"error": "Database unavailable"}, reply
            assert await db.fetchval("SELECT count(*) FROM events WHERE type = 'fault'") == 0
            status, reply, _ = await api.call("POST", "/api/events", key,
                                              json={"type": "fault", "payload": {}})
            assert status == 202, reply
    finally:
        await watcher.close()


async def test_lost_connection_after_commit_answers_202(own_server: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(own_server.dsn, server_settings={"synchronous_commit": "local"})
    try:
        async with running_node(own_server.dsn) as (_, api):
            key = await api.new_org()
            # Every commit now waits for a standby that never comes; it is committed
            # locally, and terminating the backend ends the wait without undoing it.
            await admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
            await admin.execute("SELECT pg_reload_conf()")
            await asyncio.sleep(0.5)
            try:
                status, single = await _post_and_terminate(
                    api, key, admin, "/api/events", {"type": "fault", "payload": {"n": 1}},
                    "SyncRep")
                assert status == 202 and single["status"] == "accepted", single
                status, batch = await _post_and_terminate(
                    api, key, admin, "/api/events/batch",
                    {"events": [{"type": "fault", "payload": {"n": n}} for n in (2, 3)]},
                    "SyncRep")
                assert status == 202 and batch["accepted"] == 2, batch
            finally:
                await admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
                await admin.execute("SELECT pg_reload_conf()")
        stored = {str(r["id"]) for r in await admin.fetch(
            "SELECT id FROM events WHERE type = 'fault'")}
        assert stored == {single["id"], *(item["id"] for item in batch["results"])}
    finally:
        await admin.close()


def _internal_errors(where: str) -> float:
    return REGISTRY.get_sample_value("triggerd_internal_errors_total", {"where": where}) or 0.0


async def test_a_database_bug_is_a_counted_500_never_a_503(
        database_url: str, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture) -> None:
    await db.execute("ALTER TABLE events RENAME TO events_elsewhere")  # every query on it fails
    before = {where: _internal_errors(where) for where in ("http", "writer")}
    async with running_node(database_url) as (_, api):
        key = await api.new_org()
        status, body, resp = await api.call("POST", "/api/events", key,
                                            json={"type": "t", "payload": {}})
        assert (status, body) == (500, {"error": "Internal error"})
        assert "Retry-After" not in resp.headers
        event_id = "01a2b3c4-0000-7000-8000-000000000000"
        status, body, _ = await api.call("GET", f"/api/events/{event_id}", key)
        assert (status, body) == (500, {"error": "Internal error"})
    assert _internal_errors("writer") == before["writer"] + 1
    assert _internal_errors("http") == before["http"] + 1
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(f"GET /api/events/{event_id}" in m and event_id in m for m in logged), logged


async def test_a_client_gone_mid_body_is_not_a_database_failure(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with running_node(database_url) as (_, api):
        key = await api.new_org()
        host, port = api.base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST /api/events HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                     '{"type": '.encode())
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.transport.abort()
        await asyncio.sleep(0.2)
        status, _, _ = await api.call("GET", "/health/ready")
        assert status == 200
    noisy = [r.getMessage() for r in caplog.records
             if r.levelno >= logging.WARNING and r.name.startswith(("ingestor", "aiohttp"))]
    assert not noisy, noisy


async def test_a_refused_event_is_isolated_and_the_others_commit(
        database_url: str, db: asyncpg.Connection) -> None:
    await db.execute("ALTER TABLE events ADD CONSTRAINT test_refuse CHECK (type <> 'poison')")
    node = Node(node_config(database_url, writer_concurrency=1))
    await node.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{node.config.port}", session)
            key = await api.new_org()
            types = ["a", "b", "poison", "c", "d"]
            async with db.transaction():  # one flush waits, the five queue up behind it
                await db.execute("LOCK TABLE events IN EXCLUSIVE MODE")
                first = asyncio.create_task(api.call("POST", "/api/events", key,
                                                     json={"type": "first", "payload": {}}))
                await asyncio.sleep(0.2)
                posts = [asyncio.create_task(api.call("POST", "/api/events", key,
                                                      json={"type": t, "payload": {}}))
                         for t in types]
                await asyncio.sleep(0.3)
            assert (await first)[0] == 202
            answers = [(status, body) for status, body, _ in await asyncio.gather(*posts)]
            assert answers[2] == (400, {"error": "Event refused by the database: it holds a "
                                                 "value PostgreSQL cannot store"})
            assert [status for status, _ in answers] == [202, 202, 400, 202, 202]
            status, body, _ = await api.call("POST", "/api/events/batch", key, json={
                "events": [{"type": t, "payload": {}} for t in types]})
            assert status == 400 and body["index"] == 2 and body["outcome"] == "partial", body
            assert [r["status"] for r in body["results"]] == ["accepted"] * 2 + ["rejected"] + [
                "accepted"] * 2
    finally:
        await node.root.stop(10)
    stored = await db.fetchval("SELECT count(*) FROM events WHERE type = ANY($1)", types)
    assert stored == 8
