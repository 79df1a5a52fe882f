"""Per-endpoint delivery settings reaching a real receiver: static headers, the request
timeout (and the lease that follows it), the 2xx statuses that count, and priority;
shown and changed through the API, refused with a 400 that says why."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from tests.conftest import Api
from tests.integration.delivery_helpers import insert_delivery, new_endpoint, new_event
from tests.integration.test_delivery import endpoint, post, running, wait_statuses
from tests.receiver import Received, hang_first, receiver, status


async def test_static_headers_reach_the_receiver_beside_a_valid_signature(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/h"),
                            headers={"Authorization": "Bearer abc", "X-Tenant": "t-1"})
        assert ep["headers"] == {"Authorization": "Bearer abc", "X-Tenant": "t-1"}
        await post(api, key, n=1)
        await rx.wait_for(lambda: len(rx.at("/h")) == 1)
        got = rx.at("/h")[0]
        assert got.headers["authorization"] == "Bearer abc"
        assert got.headers["x-tenant"] == "t-1"
        Webhook(ep["secret"]).verify(got.body, got.headers)
        # changed through the API; null clears them
        _, changed, _ = await api.call("PATCH", f"/api/endpoints/{ep['id']}", key,
                                       json={"headers": None})
        assert changed["headers"] is None
        await post(api, key, n=2)
        await rx.wait_for(lambda: len(rx.at("/h")) == 2)
        assert "x-tenant" not in rx.at("/h")[1].headers
        await wait_statuses(db, {"delivered"}, 2)


async def test_headers_that_sign_or_frame_the_webhook_are_refused(api: Api) -> None:
    key = await api.new_org()
    for headers, says in [
        ({"webhook-signature": "v1,forged"}, "cannot be overridden"),
        ({"Webhook-Id": "x"}, "cannot be overridden"),
        ({"X-Event-Type": "x"}, "cannot be overridden"),
        ({"Content-Type": "text/plain"}, "cannot be overridden"),
        ({"Host": "evil"}, "cannot be overridden"),
        ({"Proxy-Authorization": "x"}, "cannot be overridden"),
        ({"X Bad": "v"}, "not a header name"),
        ({"X-Ok": "line\r\nInjected: 1"}, "visible ASCII"),
        ({"X-Ok": ""}, "visible ASCII"),
        ({"X-Ok": 5}, "visible ASCII"),
        ({"X-Ok": "é"}, "visible ASCII"),
        ({"X-A": "1", "x-a": "2"}, "given twice"),
        ({f"X-{i}": "v" for i in range(21)}, "at most 20"),
        (["X-A"], "must be null or an object"),
    ]:
        status_, body, _ = await api.call("POST", "/api/endpoints", key, json={
            "url": "https://93.184.216.34/hook", "headers": headers})
        assert status_ == 400, (headers, body)
        assert says in body["error"], (headers, body)


async def test_bad_settings_are_400s_naming_the_field(api: Api) -> None:
    key = await api.new_org()
    for fields, says in [
        ({"priority": 0}, "priority"), ({"priority": 11}, "priority"),
        ({"priority": "high"}, "priority"), ({"priority": True}, "priority"),
        ({"timeout_s": 0}, "timeout_s"), ({"timeout_s": 61}, "timeout_s"),
        ({"timeout_s": "5"}, "timeout_s"), ({"timeout_s": False}, "timeout_s"),
        ({"success_statuses": []}, "success_statuses"),
        ({"success_statuses": [301]}, "success_statuses"),
        ({"success_statuses": [200.5]}, "success_statuses"),
        ({"success_statuses": "200"}, "success_statuses"),
    ]:
        status_, body, _ = await api.call("POST", "/api/endpoints", key, json={
            "url": "https://93.184.216.34/hook", **fields})
        assert status_ == 400 and says in body["error"], (fields, body)


async def test_settings_are_shown_and_changed(api: Api) -> None:
    key = await api.new_org()
    created = await new_endpoint(api, key)
    assert (created["priority"], created["timeout_s"], created["headers"],
            created["success_statuses"], created["filter"]) == (5, None, None, None, None)
    _, changed, _ = await api.call("PATCH", f"/api/endpoints/{created['id']}", key, json={
        "priority": 9, "timeout_s": 2.5, "success_statuses": [204, 200, 200]})
    assert (changed["priority"], changed["timeout_s"], changed["success_statuses"]) == (
        9, 2.5, [200, 204])
    _, shown, _ = await api.call("GET", f"/api/endpoints/{created['id']}", key)
    assert shown["priority"] == 9 and shown["timeout_s"] == 2.5
    # another organization can neither see nor change it
    other = await api.new_org("other")
    status_, _, _ = await api.call("PATCH", f"/api/endpoints/{created['id']}", other,
                                   json={"priority": 1})
    assert status_ == 404
    _, again, _ = await api.call("GET", f"/api/endpoints/{created['id']}", key)
    assert again["priority"] == 9


async def test_an_endpoint_timeout_cuts_the_attempt_and_sets_the_lease(
        database_url: str, db: asyncpg.Connection) -> None:
    """The node's default is 5 s; this endpoint's own 0.5 s cuts its first (hanging)
    attempt, and its lease is 0.5 s plus a 1 s margin, not the default's."""
    async with receiver() as rx, running(database_url, request_timeout=5.0) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/slow", hang_first(1, 3.0)), timeout_s=0.5)
        await post(api, key)
        await rx.wait_for(lambda: len(rx.at("/slow")) == 1)
        lease = await db.fetchval("SELECT extract(epoch FROM locked_until - updated_at) "
                                  "FROM deliveries WHERE status = 'in_flight'")
        assert lease is not None and 1.4 < float(lease) < 1.6, lease
        await wait_statuses(db, {"delivered"}, 1)
        errors = [r["error"] for r in await db.fetch(
            "SELECT error FROM delivery_attempts ORDER BY id")]
        assert errors[0] == "timed out after 0.5s" and errors[1] is None


async def test_only_the_listed_2xx_count_as_success(database_url: str,
                                                    db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        picky = await endpoint(api, key, rx.url("/accepted", status(202)),
                               success_statuses=[200, 204])
        await endpoint(api, key, rx.url("/any", status(202)))
        await post(api, key)
        await wait_statuses(db, {"delivered", "dead_letter"}, 2)
        rows = await db.fetch("SELECT endpoint_id::text AS ep, status, last_error "
                              "FROM deliveries ORDER BY id")
        by_endpoint = {r["ep"]: r for r in rows}
        assert by_endpoint[picky["id"]]["status"] == "dead_letter"
        assert "not one of the endpoint's success_statuses" in by_endpoint[picky["id"]][
            "last_error"]
        assert len(rx.at("/accepted")) == 4  # every attempt of the schedule was made
        assert [r["status"] for r in rows if r["ep"] != picky["id"]] == ["delivered"]


async def test_priority_orders_a_contended_pool(database_url: str,
                                                db: asyncpg.Connection) -> None:
    """Two workers, a backlog on a low-priority endpoint, then high-priority events: the
    high ones are delivered before the low backlog is through, and the low one drains."""
    gate = asyncio.Event()
    order: list[str] = []

    async def slow(got: Received, _: int) -> web.StreamResponse:
        await gate.wait()
        await asyncio.sleep(0.02)
        order.append(got.path)
        return web.Response()

    async with receiver() as rx, running(database_url, pool_size=2,
                                         endpoint_concurrency=2) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/low", slow), priority=1, event_types=["low"])
        await endpoint(api, key, rx.url("/high", slow), priority=10, event_types=["high"])
        for n in range(30):
            await post(api, key, "low", n=n)
        await rx.wait_for(lambda: len(rx.requests) == 2)  # both workers held by low ones
        for n in range(10):
            await post(api, key, "high", n=n)
        await asyncio.sleep(0.3)  # everything routed before the pool frees up
        gate.set()
        started = time.monotonic()
        await wait_statuses(db, {"delivered"}, 40, timeout=30)
        assert time.monotonic() - started < 30
    last_high = max(i for i, path in enumerate(order) if path == "/high")
    lows_before = sum(1 for path in order[:last_high] if path == "/low")
    # the two in flight when the highs came, and a fifth of each claim at most besides
    assert lows_before <= 2 + 6, order
    assert order.count("/low") == 30


async def test_a_new_priority_reaches_the_waiting_deliveries(
        api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    other = await new_endpoint(api, key)
    events = [await new_event(api, key) for _ in range(3)]
    for event in events:
        await insert_delivery(db, event, ep["id"])
        await insert_delivery(db, event, other["id"])
    done = await insert_delivery(db, await new_event(api, key), ep["id"], status="delivered")
    status_, _, _ = await api.call("PATCH", f"/api/endpoints/{ep['id']}", key,
                                   json={"priority": 8})
    assert status_ == 200
    rows = await db.fetch("SELECT endpoint_id::text AS ep, status, priority FROM deliveries")
    assert {r["priority"] for r in rows if r["ep"] == ep["id"] and r["status"] == "pending"} == {8}
    assert {r["priority"] for r in rows if r["ep"] == other["id"]} == {5}
    assert await db.fetchval("SELECT priority FROM deliveries WHERE id = $1", done) == 5
