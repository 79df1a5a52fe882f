"""Delivery against what one organization or its receiver can do to everyone else:
deleting an endpoint mid-flight, and receivers answering bytes that are not text,
huge bodies or a slow drip. Real node, real PostgreSQL, real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aiohttp import web

from tests.integration.test_delivery import endpoint, post, running
from tests.receiver import Behaviour, Received, receiver


async def _slow(_: Received, __: int) -> web.StreamResponse:
    await asyncio.sleep(0.4)
    return web.Response()


async def _open_deliveries(db: asyncpg.Connection) -> int:
    return int(await db.fetchval(
        "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'in_flight', 'failed')"))


async def _settle_wait(db: asyncpg.Connection, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while await _open_deliveries(db) or await db.fetchval(
            "SELECT count(*) FROM events e WHERE status = 'pending' "
            "AND EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)"):
        assert time.monotonic() < deadline, await db.fetch(
            "SELECT status, last_error FROM deliveries WHERE status NOT IN "
            "('delivered', 'cancelled')")
        await asyncio.sleep(0.05)


async def test_deleting_an_endpoint_mid_flight_stalls_no_one(database_url: str,
                                                            db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url, request_timeout=5.0,
                                         endpoint_concurrency=5) as (_, api):
        doomed_key, other_key = await api.new_org("doomed"), await api.new_org("other")
        doomed = await endpoint(api, doomed_key, rx.url("/doomed", _slow))
        await endpoint(api, other_key, rx.url("/other"))
        doomed_events = [await post(api, doomed_key, i=i) for i in range(40)]
        await rx.wait_for(lambda: rx.in_flight["/doomed"] >= 3)
        status, _, _ = await api.call("DELETE", f"/api/endpoints/{doomed['id']}", doomed_key)
        assert status == 200
        other_events = [await post(api, other_key, i=i) for i in range(40)]
        started = time.monotonic()
        await rx.wait_for(lambda: len({r.headers["webhook-id"] for r in rx.at("/other")}) == 40,
                          timeout=10.0)
        assert time.monotonic() - started < 10.0
        await _settle_wait(db)
        await asyncio.sleep(1.0)  # late outcomes of the cancelled attempts come in
        assert all(count == 1 for (path, _), count in rx.per_event.items() if path == "/other")
        sent_to_doomed = len(rx.at("/doomed"))
        for event_id in other_events:
            _, body, _ = await api.call("GET", f"/api/events/{event_id}", other_key)
            assert body["status"] == "delivered", body
        for event_id in doomed_events:
            _, body, _ = await api.call("GET", f"/api/events/{event_id}", doomed_key)
            assert body["status"] in ("delivered", "cancelled"), body
        states = {r["status"] for r in await db.fetch(
            "SELECT status FROM deliveries WHERE endpoint_id = $1", doomed["id"])}
        assert "cancelled" in states and states <= {"delivered", "cancelled"}
        await asyncio.sleep(1.0)
        assert len(rx.at("/doomed")) == sent_to_doomed  # nothing more goes to it


def _body(payload: bytes, status: int = 200) -> Behaviour:
    async def behave(_: Received, __: int) -> web.StreamResponse:
        return web.Response(status=status, body=payload)
    return behave


async def test_receivers_answering_bytes_that_are_not_text(database_url: str,
                                                           db: asyncpg.Connection) -> None:
    payloads = {
        "/nul": _body(b"ok\x00done"),
        "/binary": _body(bytes(range(256)) * 4),
        "/invalid-utf8": _body(b"\xff\xfe\x80 caf\xe9 \xed\xa0\x80"),
        "/huge": _body(b"x" * (8 * 1024 * 1024)),
        "/nul-500": _body(b"\x00" * 100, status=500),
    }
    async with receiver() as rx, running(database_url, retry_schedule="100ms",
                                         request_timeout=5.0) as (_, api):
        key = await api.new_org()
        for path, behaviour in payloads.items():
            await endpoint(api, key, rx.url(path, behaviour))
        event_id = await post(api, key, n=1)
        await rx.wait_for(lambda: all(rx.at(p) for p in payloads) and len(rx.at("/nul-500")) == 2)
        await _settle_wait(db)
        rows = await db.fetch(
            "SELECT ep.url, d.status, a.response_status, a.response_body "
            "FROM deliveries d JOIN endpoints ep ON ep.id = d.endpoint_id "
            "JOIN delivery_attempts a ON a.delivery_id = d.id ORDER BY ep.url, a.attempt")
        by_path = {r["url"].rsplit("/", 1)[1]: r for r in rows}
        for path in ("nul", "binary", "invalid-utf8", "huge"):
            assert by_path[path]["status"] == "delivered", by_path[path]
        assert "\ufffd" in by_path["nul"]["response_body"]
        assert len(by_path["huge"]["response_body"]) <= 4096
        assert by_path["nul-500"]["status"] == "dead_letter"  # two attempts, both 500
        assert [r["response_status"] for r in rows if r["url"].endswith("/nul-500")] == [500, 500]
        _, body, _ = await api.call("GET", f"/api/events/{event_id}", key)
        assert body["status"] == "failed"
        for delivery in await db.fetch("SELECT id FROM deliveries"):
            status, detail, _ = await api.call("GET", f"/api/deliveries/{delivery['id']}", key)
            assert status == 200, detail


async def test_an_outcome_the_database_refuses_stalls_no_one(database_url: str,
                                                             db: asyncpg.Connection) -> None:
    # A constraint of the test's own stands for any permanent refusal of one outcome.
    await db.execute("ALTER TABLE delivery_attempts ADD CONSTRAINT no_poison "
                     "CHECK (response_body IS DISTINCT FROM 'poison')")
    async with receiver() as rx, running(database_url, request_timeout=1.0) as (_, api):
        poisoned_key, other_key = await api.new_org("poisoned"), await api.new_org("other")
        await endpoint(api, poisoned_key, rx.url("/poison", _body(b"poison")))
        await endpoint(api, other_key, rx.url("/other"))
        poisoned = await post(api, poisoned_key, n=0)
        others = [await post(api, other_key, n=i) for i in range(20)]
        await rx.wait_for(lambda: len(rx.at("/other")) == 20, timeout=5.0)
        await _settle_wait(db, timeout=20.0)  # three leases expire, then it is given up
        row = await db.fetchrow("SELECT status, rescues, last_error FROM deliveries "
                                "WHERE event_id = $1", poisoned)
        assert (row["status"], row["rescues"]) == ("dead_letter", 3), row
        assert len(rx.at("/poison")) == 3
        for event_id in others:
            _, body, _ = await api.call("GET", f"/api/events/{event_id}", other_key)
            assert body["status"] == "delivered"
        assert all(count == 1 for (path, _), count in rx.per_event.items() if path == "/other")


async def test_deleting_an_endpoint_with_a_deep_backlog(database_url: str,
                                                        db: asyncpg.Connection) -> None:
    async with running(database_url, disable_webhook_delivery=True) as (_, api):
        key = await api.new_org()
        doomed = await endpoint(api, key, "http://127.0.0.1:9/never")
        org = await db.fetchval("SELECT org_id FROM endpoints")
        await db.execute("INSERT INTO events (id, org_id, type, payload, routed_at) "
                         "SELECT gen_random_uuid(), $1, 't', '{}', now() "
                         "FROM generate_series(1, 12000)", org)
        await db.execute("INSERT INTO deliveries (event_id, endpoint_id, org_id) "
                         "SELECT id, $1, $2 FROM events", doomed["id"], org)
        status, body, _ = await api.call("DELETE", f"/api/endpoints/{doomed['id']}", key)
        assert status == 200, body
        await _settle_wait(db, timeout=20.0)  # the Rescuer cancels what the delete left
        assert await db.fetchval("SELECT count(*) FROM events WHERE status = 'cancelled'") == 12000
