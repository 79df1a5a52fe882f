"""Routing and delivery end to end: real node, real PostgreSQL, real receivers on
127.0.0.1, signatures checked with the standardwebhooks verifier."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
from standardwebhooks.webhooks import Webhook

from supervisor.node.config import ROLES
from supervisor.node.tree import Node
from tests.conftest import Api, node_config
from tests.receiver import fail_first, hang_first, receiver, status


def delivery_config(database_url: str, **changes: Any) -> Any:
    settings: dict[str, Any] = dict(
        roles=ROLES, allow_private_targets=True, retry_schedule="100ms,200ms,300ms",
        request_timeout=1.0, breaker_threshold=0, poll_interval=0.05, rescue_interval=0.5)
    settings.update(changes)
    return node_config(database_url, **settings)


@asynccontextmanager
async def running(database_url: str, **changes: Any) -> AsyncIterator[tuple[Node, Api]]:
    node = Node(delivery_config(database_url, **changes))
    await node.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield node, Api(f"http://127.0.0.1:{node.config.port}", session)
    finally:
        await node.root.stop(10)


async def endpoint(api: Api, key: str, url: str, **fields: Any) -> dict[str, Any]:
    status_, body, _ = await api.call("POST", "/api/endpoints", key, json={"url": url, **fields})
    assert status_ == 201, body
    return body


async def post(api: Api, key: str, type_: str = "order.created", **payload: Any) -> str:
    status_, body, _ = await api.call("POST", "/api/events", key,
                                      json={"type": type_, "payload": payload})
    assert status_ == 202, body
    return str(body["id"])


async def delivery_states(db: asyncpg.Connection) -> list[str]:
    return [r["status"] for r in await db.fetch("SELECT status FROM deliveries ORDER BY id")]


async def wait_statuses(db: asyncpg.Connection, want: set[str], count: int,
                        timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        states = await delivery_states(db)
        if len(states) == count and set(states) <= want:
            return
        assert asyncio.get_running_loop().time() < deadline, states
        await asyncio.sleep(0.05)


async def test_event_reaches_endpoint_signed(database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/hook"))
        event_id = await post(api, key, n=1)
        await rx.wait_for(lambda: len(rx.at("/hook")) == 1)
        got = rx.at("/hook")[0]
        Webhook(ep["secret"]).verify(got.body, got.headers)
        body = json.loads(got.body)
        assert body["id"] == event_id and body["type"] == "order.created"
        assert body["data"] == {"n": 1} and body["timestamp"].endswith("Z")
        assert got.headers["webhook-id"] == event_id
        assert got.headers["x-event-id"] == event_id
        assert got.headers["x-event-type"] == "order.created"
        assert got.headers["x-delivery-attempt"] == "1"
        assert got.headers["user-agent"].startswith("triggerd/")
        await wait_statuses(db, {"delivered"}, 1)
        _, event, _ = await api.call("GET", f"/api/events/{event_id}", key)
        assert event["status"] == "delivered"
        assert [d["status"] for d in event["deliveries"]] == ["delivered"]


async def test_failures_are_retried_and_recorded(database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/flaky", fail_first(2)))
        event_id = await post(api, key)
        await wait_statuses(db, {"delivered"}, 1)
        got = rx.at("/flaky")
        assert [r.headers["x-delivery-attempt"] for r in got] == ["1", "2", "3"]
        assert {r.headers["webhook-id"] for r in got} == {event_id}  # stable across retries
        attempts = await db.fetch(
            "SELECT attempt, response_status, response_body FROM delivery_attempts ORDER BY id")
        assert [(a["attempt"], a["response_status"]) for a in attempts] == [
            (1, 500), (2, 500), (3, 200)]
        assert attempts[0]["response_body"] == "failure 1"


async def test_timeouts_are_retried(database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url, request_timeout=0.5) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/slow", hang_first(1, 2.0)))
        await post(api, key)
        await wait_statuses(db, {"delivered"}, 1)
        errors = [r["error"] for r in await db.fetch(
            "SELECT error FROM delivery_attempts ORDER BY id")]
        assert len(errors) == 2 and "timed out" in errors[0] and errors[1] is None


async def test_exhausted_attempts_dead_letter_with_an_alert(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx:
        alerts = rx.url("/alerts")
        async with running(database_url, alert_webhook_url=alerts) as (_, api):
            key = await api.new_org()
            await endpoint(api, key, rx.url("/down", status(500)))
            event_id = await post(api, key)
            await wait_statuses(db, {"dead_letter"}, 1)
            assert len(rx.at("/down")) == 4  # the schedule's 3 delays + the first attempt
            await rx.wait_for(lambda: len(rx.at("/alerts")) == 1)
            text = json.loads(rx.at("/alerts")[0].body)["text"]
            assert event_id in text and "dead-letter" in text
            _, event, _ = await api.call("GET", f"/api/events/{event_id}", key)
            assert event["status"] == "failed"


async def test_410_disables_the_endpoint(database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/gone", status(410)))
        await post(api, key)
        await wait_statuses(db, {"dead_letter"}, 1)
        assert len(rx.at("/gone")) == 1
        _, body, _ = await api.call("GET", f"/api/endpoints/{ep['id']}", key)
        assert body["enabled"] is False and "410" in body["disabled_reason"]
        await post(api, key)  # a disabled endpoint receives nothing
        await asyncio.sleep(0.5)
        assert len(rx.at("/gone")) == 1


async def test_429_retry_after_is_honoured(database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url, retry_schedule="1s,1s") as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/busy", fail_first(1, 429)))
        rx.behaviours["/busy"] = _throttle_once
        await post(api, key)
        await wait_statuses(db, {"delivered"}, 1)
        first, second = rx.at("/busy")
        # Retry-After: 2 lies between the scheduled 1 s (+/-20 %) and twice it.
        assert second.at - first.at >= 1.9


async def _throttle_once(_: Any, nth: int) -> Any:
    from aiohttp import web

    if nth == 1:
        return web.Response(status=429, headers={"Retry-After": "2"})
    return web.Response()


async def test_refused_connections_are_retried_then_dead_lettered(
        database_url: str, db: asyncpg.Connection) -> None:
    from tests.conftest import free_port

    async with running(database_url) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, f"http://127.0.0.1:{free_port()}/nobody")
        await post(api, key)
        await wait_statuses(db, {"dead_letter"}, 1)
        errors = [r["error"] for r in await db.fetch("SELECT error FROM delivery_attempts")]
        assert len(errors) == 4 and all("refused" in e for e in errors)


async def test_fan_out_follows_event_type_filters(database_url: str,
                                                  db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/orders"), event_types=["order.*"])
        await endpoint(api, key, rx.url("/created"), event_types=["order.created"])
        await endpoint(api, key, rx.url("/users"), event_types=["user.*"])
        await endpoint(api, key, rx.url("/all"))
        order = await post(api, key, "order.created")
        user = await post(api, key, "user.deleted")
        await post(api, key, "orders.x")  # not a match for "order.*"
        await wait_statuses(db, {"delivered"}, 6)
        seen = {path: [r.headers["webhook-id"] for r in rx.at(path)]
                for path in ("/orders", "/created", "/users")}
        assert seen == {"/orders": [order], "/created": [order], "/users": [user]}
        assert len(rx.at("/all")) == 3


async def test_ordered_endpoint_delivers_in_order_one_at_a_time(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/ordered", fail_first(2)), ordered=True)
        ids = [await post(api, key, i=i) for i in range(6)]
        await wait_statuses(db, {"delivered"}, 6)
        received = [r.headers["webhook-id"] for r in rx.at("/ordered")]
        first_seen = list(dict.fromkeys(received))
        assert first_seen == ids
        assert rx.max_in_flight["/ordered"] == 1
        assert len(received) == 6 * 3  # each failed twice, in turn, holding the rest


async def test_breaker_holds_deliveries_without_spending_attempts(
        database_url: str, db: asyncpg.Connection) -> None:
    healthy = asyncio.Event()

    async def outage(_: Any, __: int) -> Any:
        from aiohttp import web

        return web.Response(status=200 if healthy.is_set() else 503)

    # The cooldown (3 s) outlasts the quiet window below by far, also on a loaded machine,
    # so the window never sees the half-open probe.
    settings = dict(breaker_threshold=3, breaker_cooldown=3.0, retry_schedule="100ms," * 20 + "1s")
    async with receiver() as rx, running(database_url, **settings) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/outage", outage))
        for i in range(10):
            await post(api, key, i=i)
        await rx.wait_for(lambda: len(rx.at("/outage")) >= 3)
        await asyncio.sleep(0.6)  # open: nothing goes out
        during = len(rx.at("/outage"))
        await asyncio.sleep(0.3)
        assert len(rx.at("/outage")) == during
        healthy.set()
        await wait_statuses(db, {"delivered"}, 10)
        spent = await db.fetchval("SELECT max(attempts) FROM deliveries")
        assert spent <= 3, "held deliveries must not spend attempts"


async def test_rotated_secret_signs_twice(database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/rotating"))
        status_, rotated, _ = await api.call(
            "POST", f"/api/endpoints/{ep['id']}/rotate-secret", key)
        assert status_ == 200 and rotated["secret"] != ep["secret"]
        await post(api, key)
        await rx.wait_for(lambda: len(rx.at("/rotating")) == 1)
        got = rx.at("/rotating")[0]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        Webhook(ep["secret"]).verify(got.body, got.headers)
        Webhook(rotated["secret"]).verify(got.body, got.headers)


async def test_injected_worker_crash_is_restarted_and_nothing_lost(
        database_url: str, db: asyncpg.Connection) -> None:
    from workers.deliverer import Deliverer

    crashed = []
    original = Deliverer.deliver

    async def crash_once(self: Deliverer, job: Any) -> Any:
        if not crashed:
            crashed.append(job.delivery_id)
            raise RuntimeError("injected worker crash")
        return await original(self, job)

    Deliverer.deliver = crash_once  # type: ignore[method-assign]
    try:
        async with receiver() as rx, running(database_url) as (node, api):
            key = await api.new_org()
            await endpoint(api, key, rx.url("/hook"))
            ids = [await post(api, key, i=i) for i in range(20)]
            await wait_statuses(db, {"delivered"}, 20)
            assert crashed
            assert {r.headers["webhook-id"] for r in rx.at("/hook")} == set(ids)
            assert node.subtrees["processing"].restarts >= 1
    finally:
        Deliverer.deliver = original  # type: ignore[method-assign]


async def test_disabled_delivery_routes_but_sends_nothing(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx:
        async with running(database_url, disable_webhook_delivery=True) as (_, api):
            key = await api.new_org()
            await endpoint(api, key, rx.url("/later"))
            await post(api, key)
            await wait_statuses(db, {"pending"}, 1)
            await asyncio.sleep(0.3)
            assert rx.at("/later") == []
        async with running(database_url) as _:
            await wait_statuses(db, {"delivered"}, 1)
            assert len(rx.at("/later")) == 1


async def test_endpoint_failing_too_long_is_disabled_then_recovered(
        database_url: str, db: asyncpg.Connection) -> None:
    healthy = asyncio.Event()

    async def down_until_fixed(_: Any, __: int) -> Any:
        from aiohttp import web

        return web.Response(status=200 if healthy.is_set() else 500)

    settings = dict(disable_after=1.0, retry_schedule="300ms," * 30 + "300ms")
    async with receiver() as rx:
        alerts = rx.url("/alerts")
        async with running(database_url, alert_webhook_url=alerts, **settings) as (_, api):
            key = await api.new_org()
            ep = await endpoint(api, key, rx.url("/fixme", down_until_fixed))
            event_id = await post(api, key)
            await wait_statuses(db, {"dead_letter"}, 1, timeout=15)
            _, body, _ = await api.call("GET", f"/api/endpoints/{ep['id']}", key)
            assert body["enabled"] is False and "no successful delivery" in body["disabled_reason"]
            _, delivery, _ = await api.call("GET", "/api/deliveries", key)
            assert "endpoint disabled" in delivery["deliveries"][0]["last_error"]
            await rx.wait_for(lambda: any("disabled" in json.loads(r.body)["text"]
                                          for r in rx.at("/alerts")))
            healthy.set()
            status_, _, _ = await api.call("POST", f"/api/endpoints/{ep['id']}/recover", key,
                                           json={"since": "2000-01-01T00:00:00Z"})
            assert status_ == 409  # enable it first
            assert (await api.call("POST", f"/api/endpoints/{ep['id']}/enable", key))[0] == 200
            status_, body, _ = await api.call("POST", f"/api/endpoints/{ep['id']}/recover", key,
                                              json={"since": "2000-01-01T00:00:00Z"})
            assert status_ == 202 and body["requeued"] == 1
            await wait_statuses(db, {"delivered"}, 1)
            _, event, _ = await api.call("GET", f"/api/events/{event_id}", key)
            assert event["status"] == "delivered"


async def test_dead_letter_alerts_are_coalesced_per_endpoint(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx:
        alerts = rx.url("/alerts")
        async with running(database_url, alert_webhook_url=alerts,
                           retry_schedule="50ms") as (_, api):
            key = await api.new_org()
            await endpoint(api, key, rx.url("/down", status(500)))
            for i in range(5):
                await post(api, key, i=i)
            await wait_statuses(db, {"dead_letter"}, 5)
            await asyncio.sleep(0.5)
            texts = [json.loads(r.body)["text"] for r in rx.at("/alerts")]
            assert len(texts) == 1, texts  # the other four wait for the minute to pass


async def test_rate_limit_per_second_spreads_deliveries(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/paced"), rate_limit_per_second=5)
        for i in range(15):
            await post(api, key, i=i)
        await wait_statuses(db, {"delivered"}, 15)
        times = sorted(r.at for r in rx.at("/paced"))
        assert len(times) == 15
        # A full bucket of 5, then 5 a second: the last one no sooner than ~2 s in.
        assert times[-1] - times[0] >= 1.6
        assert all(times[i + 10] - times[i] >= 0.9 for i in range(len(times) - 10))
        spent = await db.fetchval("SELECT max(attempts) FROM deliveries")
        assert spent == 1, "waiting for the rate spends no attempt"


async def test_a_slow_receiver_does_not_hold_up_the_others(
        database_url: str, db: asyncpg.Connection) -> None:
    async def slow(_: Any, __: int) -> Any:
        from aiohttp import web

        await asyncio.sleep(1.0)
        return web.Response()

    settings = dict(pool_size=10, endpoint_concurrency=4, request_timeout=5.0)
    async with receiver() as rx, running(database_url, **settings) as (_, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/slow", slow), event_types=["slow"])
        await endpoint(api, key, rx.url("/fast"), event_types=["fast"])
        for i in range(12):
            await post(api, key, "slow", i=i)
        started = asyncio.get_running_loop().time()
        for i in range(30):
            await post(api, key, "fast", i=i)
        await rx.wait_for(lambda: len(rx.at("/fast")) == 30, timeout=10)
        # Twelve slow deliveries at four at a time take three seconds; the fast ones
        # go through the free workers meanwhile.
        assert asyncio.get_running_loop().time() - started < 1.5
        assert len(rx.at("/slow")) < 12 and rx.max_in_flight["/slow"] <= 4
        await wait_statuses(db, {"delivered"}, 42, timeout=15)


async def test_retention_prunes_only_settled_events(database_url: str,
                                                     db: asyncpg.Connection) -> None:
    settings = dict(retention=0.5, prune_interval=0.2, retry_schedule="1h")
    async with receiver() as rx, running(database_url, **settings) as (node, api):
        key = await api.new_org()
        await endpoint(api, key, rx.url("/ok"), event_types=["done"])
        await endpoint(api, key, rx.url("/down", status(500)), event_types=["stuck"])
        done = [await post(api, key, "done", i=i) for i in range(3)]
        stuck = await post(api, key, "stuck")
        await rx.wait_for(lambda: len(rx.at("/ok")) == 3 and len(rx.at("/down")) == 1)
        deadline = asyncio.get_running_loop().time() + 10
        while await db.fetchval("SELECT count(*) FROM events") > 1:
            assert asyncio.get_running_loop().time() < deadline, "not pruned"
            await asyncio.sleep(0.1)
        for event_id in done:
            assert (await api.call("GET", f"/api/events/{event_id}", key))[0] == 404
        status_, event, _ = await api.call("GET", f"/api/events/{stuck}", key)
        assert status_ == 200 and event["deliveries"][0]["status"] == "failed"
        assert await db.fetchval("SELECT count(*) FROM deliveries") == 1
        assert await db.fetchval("SELECT count(*) FROM delivery_attempts") == 1


async def test_a_node_without_the_ingest_role_still_answers_health_and_metrics(
        database_url: str) -> None:
    async with running(database_url, roles=frozenset({"process", "deliver"})) as (node, api):
        status_, body, _ = await api.call("GET", "/health/ready")
        assert status_ == 200 and body["status"] == "ready"
        async with api.request("GET", "/metrics") as resp:
            assert resp.status == 200 and "triggerd_pool_size" in await resp.text()
        status_, _, _ = await api.call("POST", "/api/events", json={"type": "t", "payload": {}})
        assert status_ == 404  # no ingest here
