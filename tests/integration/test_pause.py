"""Endpoint pause and resume, end to end: a paused endpoint accumulates its deliveries
(no attempt spent, nothing reaches its receiver, none becomes a dead letter) while other
endpoints and organizations keep flowing; resuming drains them in order. Plus who may
pause what, idempotence, and how a pause meets the breaker, disabling and the
auto-disable clock."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from tests.conftest import Api
from tests.integration.delivery_helpers import insert_delivery, new_endpoint, new_event
from tests.integration.test_delivery import endpoint, post, running
from tests.receiver import fail_first, receiver
from workers import queries as worker_queries


async def _pause(api: Api, key: str, endpoint_id: str, action: str = "pause",
                 expected: int = 200) -> dict[str, Any]:
    status, body, _ = await api.call("POST", f"/api/endpoints/{endpoint_id}/{action}", key)
    assert status == expected, body
    return body


async def _deliveries(db: asyncpg.Connection, endpoint_id: str) -> list[asyncpg.Record]:
    return list(await db.fetch("SELECT status, attempts FROM deliveries WHERE endpoint_id = $1"
                               " ORDER BY id", endpoint_id))


async def _settled(db: asyncpg.Connection, endpoint_id: str, want: list[tuple[str, int]],
                   timeout: float = 10.0) -> None:
    """Waits until the endpoint's deliveries are `want` (their outcomes recorded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = [(r["status"], r["attempts"]) for r in await _deliveries(db, endpoint_id)]
        if got == want:
            return
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.05)


async def test_paused_endpoint_accumulates_then_drains_in_order(
        database_url: str, db: asyncpg.Connection) -> None:
    count = 12
    # One attempt in flight per endpoint, so an unordered endpoint's order shows too.
    async with receiver() as rx, running(database_url, endpoint_concurrency=1) as (_, api):
        key, other = await api.new_org("a"), await api.new_org("b")
        plain = await endpoint(api, key, rx.url("/plain"))
        ordered = await endpoint(api, key, rx.url("/ordered"), ordered=True)
        await endpoint(api, other, rx.url("/theirs"))
        for target in (plain, ordered):
            paused = await _pause(api, key, target["id"])
            assert paused["paused"] is True and paused["paused_at"] is not None
        sent = [await post(api, key, i=i) for i in range(count)]
        flowing = [await post(api, other, i=i) for i in range(count)]
        await rx.wait_for(lambda: len(rx.at("/theirs")) == count)
        assert sorted(json.loads(r.body)["id"] for r in rx.at("/theirs")) == sorted(flowing)
        await asyncio.sleep(1.2)  # several claims and two Rescuer ticks later
        assert rx.at("/plain") == [] and rx.at("/ordered") == []
        for target in (plain, ordered):
            rows = await _deliveries(db, target["id"])
            assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 0)] * count
        _, health, _ = await api.call("GET", "/api/webhook-metrics/queue-health", key)
        assert health["stats"]["paused"] == 2 * count
        for target in (plain, ordered):
            resumed = await _pause(api, key, target["id"], "resume")
            assert resumed["paused"] is False and resumed["paused_at"] is None
        await rx.wait_for(lambda: len(rx.at("/plain")) == len(rx.at("/ordered")) == count)
        for path in ("/plain", "/ordered"):
            assert [json.loads(r.body)["id"] for r in rx.at(path)] == sent, path
        for target in (plain, ordered):
            await _settled(db, target["id"], [("delivered", 1)] * count)


async def test_an_attempt_never_starts_on_a_paused_endpoint_but_retries_wait(
        database_url: str, db: asyncpg.Connection) -> None:
    """A failing delivery is retried later; paused meanwhile, its retry waits (no attempt
    spent, never a dead letter), and goes once resumed."""
    async with receiver() as rx, running(database_url, retry_schedule="1s,1s") as (_, api):
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/flaky", fail_first(1)))
        await post(api, key, n=1)
        await rx.wait_for(lambda: len(rx.at("/flaky")) == 1)
        await _pause(api, key, ep["id"])
        await asyncio.sleep(2.0)  # past the retry's 1 s (+/- 20 %), and Rescuer ticks
        assert len(rx.at("/flaky")) == 1
        rows = await _deliveries(db, ep["id"])
        assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 1)]
        await _pause(api, key, ep["id"], "resume")
        await rx.wait_for(lambda: len(rx.at("/flaky")) == 2)
        await _settled(db, ep["id"], [("delivered", 2)])


async def test_pause_is_the_organizations_own_and_idempotent(api: Api) -> None:
    key, other = await api.new_org("a"), await api.new_org("b")
    ep = await new_endpoint(api, key)
    first = await _pause(api, key, ep["id"])
    again = await _pause(api, key, ep["id"])
    assert first["paused"] is again["paused"] is True
    assert again["paused_at"] == first["paused_at"]
    assert again["paused_by"] == first["paused_by"]
    assert first["paused_by"].startswith("key_") and len(first["paused_by"]) == 20
    _, shown, _ = await api.call("GET", f"/api/endpoints/{ep['id']}", key)
    assert shown["paused"] is True and shown["paused_at"] == first["paused_at"]
    for action in ("pause", "resume"):
        body = await _pause(api, other, ep["id"], action, 404)
        assert body == {"error": "Endpoint not found"}
    _, shown, _ = await api.call("GET", f"/api/endpoints/{ep['id']}", key)
    assert shown["paused"] is True  # untouched by the other organization
    resumed = await _pause(api, key, ep["id"], "resume")
    assert (resumed["paused"], resumed["paused_at"], resumed["paused_by"]) == (False, None, None)
    assert (await _pause(api, key, ep["id"], "resume"))["paused"] is False
    await _pause(api, key, "not-a-uuid", "pause", 400)
    status, _, _ = await api.call("DELETE", f"/api/endpoints/{ep['id']}", key)
    assert status == 200
    for action in ("pause", "resume"):
        await _pause(api, key, ep["id"], action, 404)


async def test_patch_and_create_take_paused(api: Api) -> None:
    key = await api.new_org()
    created = await new_endpoint(api, key, paused=True)
    assert created["paused"] is True and created["paused_by"].startswith("key_")
    assert (await new_endpoint(api, key))["paused"] is False
    path = f"/api/endpoints/{created['id']}"
    status, body, _ = await api.call("PATCH", path, key, json={"paused": True})
    assert status == 200 and body["paused_at"] == created["paused_at"]
    status, body, _ = await api.call("PATCH", path, key, json={"paused": False,
                                                               "description": "d"})
    assert status == 200 and body["paused"] is False and body["paused_by"] is None
    assert body["description"] == "d"
    status, body, _ = await api.call("PATCH", path, key, json={"paused": "yes"})
    assert status == 400 and "paused" in body["error"]


async def test_pause_with_the_breaker_and_disabling(api: Api, db: asyncpg.Connection) -> None:
    """The claim takes nothing of a paused endpoint, not even a half-open breaker's probe;
    the Rescuer's end of a disabled endpoint's deliveries passes a paused one over; enable
    and resume are independent."""
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    await db.execute("UPDATE endpoints SET breaker_cooldown_s = 30, "
                     "breaker_open_until = now() - interval '1 second' WHERE id = $1", ep["id"])

    async def held() -> dict[str, bool]:
        return {str(r["id"]): r["open_for_one"]
                for r in await db.fetch(worker_queries.HELD_ENDPOINTS)}

    assert await held() == {ep["id"]: True}  # half-open: one probe may go
    await _pause(api, key, ep["id"])
    assert await held() == {ep["id"]: False}  # paused: not even the probe
    await insert_delivery(db, await new_event(api, key), ep["id"])
    assert await db.fetch(worker_queries.END_HELD_DELIVERIES, 100) == []
    await _pause(api, key, ep["id"], "resume")
    assert await held() == {ep["id"]: True}  # the breaker is as it was
    await _pause(api, key, ep["id"])
    await db.execute("UPDATE endpoints SET enabled = false, disabled_reason = 'gone' "
                     "WHERE id = $1", ep["id"])
    ended = await db.fetch(worker_queries.END_HELD_DELIVERIES, 100)
    assert len(ended) == 1 and ended[0]["cancelled"] is False  # disabled wins: dead letter
    enabled = await _pause(api, key, ep["id"], "enable")
    assert enabled["enabled"] is True and enabled["paused"] is True
    assert enabled["breaker"] == "closed"


async def test_the_auto_disable_clock_stands_still_while_paused(
        api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    await db.execute("UPDATE endpoints SET consecutive_failures = 5, "
                     "last_success_at = now() - interval '10 days' WHERE id = $1", ep["id"])
    day = 86_400.0

    async def stale() -> list[str]:
        return [r["id"] for r in await db.fetch(worker_queries.STALE_ENDPOINTS, day)]

    assert await stale() == [ep["id"]]
    await _pause(api, key, ep["id"])
    assert await stale() == []  # paused: never disabled for it
    await _pause(api, key, ep["id"], "resume")
    assert await stale() == []  # the clock restarted at the resume
    await db.execute("UPDATE endpoints SET resumed_at = now() - interval '2 days' "
                     "WHERE id = $1", ep["id"])
    assert await stale() == [ep["id"]]
